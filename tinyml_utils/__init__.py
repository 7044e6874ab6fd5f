"""tinyml_utils: the pieces of TinyML from Scratch that chapters build once and reuse.

Each module holds one idea; chapters derive it step by step and assert they match the package.
"""
__version__ = "0.1.0"
