"""sdsim: a batch system-dynamics engine that compiles models written as YAML data.

The engine knows nothing about any particular model: the model lives in data files
(``model/``) that it loads, checks and compiles once into numpy code.
"""

__version__ = "0.1.0"
