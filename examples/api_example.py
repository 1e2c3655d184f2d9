# %% [markdown]
# # sdsim from Python: one notebook-style walk through the API
#
# Run it as a script (`python examples/api_example.py`) or cell by cell in an editor that understands
# `# %%` cells (VS Code, Spyder, Jupytext). Every table is a pandas DataFrame; nothing is written to disk
# unless you ask for it.

# %%
import sdsim

sim = sdsim.load()  # the model in ./model, else the packaged Yubei model
print(len(sim.model.stocks), "stocks,", len(sim.model.goals), "goals")

# %% A scenario: a shipped one by name, changed in code (validated exactly like a YAML file)
sc = sim.scenario("baseline", levers={"ht_investment": 100})
res = sim.run(sc)
print(res.goals[["value", "threshold", "met", "first_year_met"]].to_string())

# %% Yearly values, indexed by year
print(res.timeseries.loc[2021:2026, ["tech_enterprises", "high_tech_enterprises"]].round(0))

# %% Bad input raises sdsim.InputError (a ValueError) with the command line's message
try:
    sim.scenario("baseline", levers={"ht_invest": 100})  # a misspelt lever
except sdsim.InputError as err:
    print("refused:", err)

# %% Uncertainty: Monte Carlo over every uncertain assumption, each sample re-calibrated
ens = sim.sensitivity(sc, method="mc", samples=1000, seed=1)
print(ens.probabilities[["p_prior", "p_conditioned"]].round(2))
idx = ens.indices
top = idx[(idx["output"] == "ht_output_share") & (idx["index"] == "spearman")].sort_values("value", key=abs, ascending=False)
print(top.head(5)[["parameter", "index", "value"]].to_string(index=False))
