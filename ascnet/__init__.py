"""ASCNet: self-supervised video representation learning by appearance-speed consistency.

`import ascnet` never needs DALI or CUDA; the parts that do probe for them once
(`ascnet.optional`) and say how to install what is missing.
"""

__version__ = "0.1.0"
