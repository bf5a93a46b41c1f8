from setuptools import setup

# Everything installed lives under `import ascnet`: the top-level folders
# pipelines/ and tools/ become ascnet.pipelines and ascnet.tools. ascnet.bench carries the
# GPU check's shell script beside its Python entry point.
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
        "ascnet.bench",
        "ascnet.pipelines",
        "ascnet.tools",
    ],
    package_data={"ascnet.bench": ["gpu_check.sh"]},
)
