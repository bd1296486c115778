"""The classify stage records tl.sample_burden's per-sample numbers with the run's antigen model."""

from __future__ import annotations

from cd7escape._config import Config
from cd7escape._uns import NS
from cd7escape.pipeline._stages import STAGES


def test_classify_stage_records_the_per_sample_numbers(simulated_patients):
    adata = simulated_patients.copy("preexisting_700", malignant=True, cell_class=True)
    config = Config(samples="unused.csv", classify={"n_bootstrap": 0}, antigen_model={"alpha": 0.1})
    stages = {s.name: s for s in STAGES}
    for name in ("antigen", "classify"):
        stages[name].run(adata, config)
    burden = adata.uns[NS]["burden"]
    assert burden["params"]["alpha"] == 0.1  # the antigen model of the run
    assert burden["params"]["confidence"] == 0.9
    assert list(burden["table"]["timepoint"]) == ["baseline", "relapse"]
    assert "classify" in adata.uns[NS]
