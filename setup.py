from setuptools import setup

# Everything installed lives under `import ascnet`: the top-level folders
# pipelines/ and tools/ become ascnet.pipelines and ascnet.tools.
setup(
    package_dir={
        "ascnet": "ascnet",
        "ascnet.pipelines": "pipelines",
        "ascnet.tools": "tools",
    },
    packages=[
        "ascnet",
        "ascnet.cli",
        "ascnet.models",
        "ascnet.evaluate",
        "ascnet.pipelines",
        "ascnet.tools",
    ],
)
