"""sdsim: a batch system-dynamics engine that compiles models written as YAML data.

The engine knows nothing about any particular model: the model lives in data files
(``model/``) that it loads, checks and compiles once into numpy code.

Python API (see :mod:`sdsim.api`)::

    import sdsim
    sim = sdsim.load()
    res = sim.run(sim.scenario("baseline", levers={"ht_investment": 100}))
    res.goals, res.timeseries        # pandas DataFrames
"""

from .api import Result, SensitivityResult, Simulator, load
from .errors import InputError, ModelError
from .scenario import Scenario

__version__ = "0.1.0"

__all__ = ["InputError", "ModelError", "Result", "Scenario", "SensitivityResult", "Simulator", "__version__", "load"]
