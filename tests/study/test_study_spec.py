"""The study: section and its trials, without running any: validation with positions, --vary,
trial names and overrides, how trials share the cores, and what `sgl run` / `sgl plan` do with it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import MINI_SPEC, where
from sgl.engine.cli.main import main
from sgl.engine.errors import SpecError, StudyError
from sgl.engine.study.resources import choose
from sgl.engine.study.trials import load_study

STUDY = MINI_SPEC + """study:
  vary:
    seed: [0, 1]
    loss_weights.pseudo: [0.5, 2.0]
"""


def _problems(path, vary=()):
    with pytest.raises(SpecError) as caught:
        load_study(path, vary=vary)
    return [str(p) for p in caught.value.problems]


def test_trials_are_the_product_each_an_override_list(spec_file):
    study = load_study(spec_file(STUDY))
    assert [t.overrides for t in study.trials] == [
        ["seed=0", "loss_weights.pseudo=0.5"], ["seed=0", "loss_weights.pseudo=2.0"],
        ["seed=1", "loss_weights.pseudo=0.5"], ["seed=1", "loss_weights.pseudo=2.0"]]
    assert [t.name for t in study.trials][:2] == ["t000_seed-0_pseudo-0.5", "t001_seed-0_pseudo-2.0"]
    assert [c.plan.seed for c in study.compiled] == [0, 0, 1, 1]
    assert [c.spec.loss_weights.pseudo for c in study.compiled] == [0.5, 2.0, 0.5, 2.0]
    assert study.rows == ["loss_weights.pseudo"]  # seeds are replicates, not rows


def test_named_variants_replace_a_whole_mapping_and_label_the_rows(spec_file):
    text = MINI_SPEC + """study:
  vary:
    learners:
      K2: {a: {kind: darts, channels: 4, layers: 3, nodes: 2}, b: {kind: darts, channels: 4, layers: 3, nodes: 2}}
      K3: {a: {kind: darts, channels: 4, layers: 3, nodes: 2}, b: {kind: darts, channels: 4, layers: 3, nodes: 2},
           c: {kind: pc_darts, channels: 4, layers: 3, nodes: 2}}
"""
    study = load_study(spec_file(text))
    assert [list(c.plan.learners) for c in study.compiled] == [["a", "b"], ["a", "b", "c"]]
    assert [t.labels for t in study.trials] == [{"learners": "K2"}, {"learners": "K3"}]
    assert study.trials[0].overrides[0].startswith("learners={a: {kind: darts")


def test_vary_from_the_command_line_adds_and_replaces(spec_file):
    study = load_study(spec_file(STUDY), vary=["seed=[5, 6, 7]", "optim.weights.lr=[0.1]"])
    assert len(study.trials) == 3 * 2
    assert study.trials[0].overrides == ["seed=5", "loss_weights.pseudo=0.5", "optim.weights.lr=0.1"]
    assert load_study(spec_file(MINI_SPEC), vary=["seed=[0, 1]"]).rows == []


def test_bad_study_input_is_refused_with_positions(spec_file):
    path = spec_file(MINI_SPEC + """study:
  vary:
    seed: []
    loss_weights.psuedo: [0.5]
  tabel: {}
""")
    found = _problems(path)
    assert found[0] == f"{where(path, '[]')}: study.vary.seed: no values: the study would have no trials"
    assert any(p.startswith(f"{where(path, 'tabel')}: study.tabel: unknown key") for p in found), found


def test_a_key_the_spec_does_not_have_points_at_the_vary_key(spec_file):
    path = spec_file(STUDY.replace("loss_weights.pseudo:", "loss_weights.psuedo:"))
    assert _problems(path) == [f"{where(path, 'loss_weights.psuedo')}: loss_weights.psuedo: unknown key "
                               "(did you mean 'pseudo'?) (in every trial)"]


def test_a_bad_value_points_at_the_value_and_names_its_trials(spec_file):
    path = spec_file(STUDY.replace("[0.5, 2.0]", "[0.5, -1]"))
    assert _problems(path) == [f"{where(path, '-1')}: loss_weights.pseudo: input should be greater than or equal "
                               "to 0 (got -1) (in trials seed=0, loss_weights.pseudo=-1; seed=1, loss_weights.pseudo=-1)"]


def test_a_trial_the_planner_refuses_is_reported_with_the_others(spec_file):
    # λ = 0: the search stage's PL step would make pseudo-labels no V-step uses (a planner check)
    path = spec_file(STUDY.replace("[0.5, 2.0]", "[0.0, 1.0]").replace("seed: [0, 1]", "seed: [0]") +
                     "  table: {rows: [seeed], metrics: [test_eror]}\n")
    found = _problems(path)
    assert found[0] == f"{where(path, 'seeed')}: study.table.rows.0: 'seeed' is not a varied key (did you mean " \
                       "'seed'?); varied: seed, loss_weights.pseudo"
    assert found[1].startswith(f"{where(path, 'test_eror')}: study.table.metrics.0: unknown metric 'test_eror' "
                               "(did you mean 'test_error'?)")
    assert found[2] == f"{where(path, '[A, W, PL, V]')}: stages.1.steps: PL makes pseudo-labels that no V-step " \
                       "uses in this stage (in trial seed=0, loss_weights.pseudo=0.0)"


def test_empty_vary_and_a_spec_without_a_study(spec_file):
    assert any("nothing to vary" in p for p in _problems(spec_file(MINI_SPEC + "study: {vary: {}}\n")))
    path = spec_file(MINI_SPEC, "plain.yaml")
    assert _problems(path) == [f"{path}:1:1: study: no study: section and no --vary: nothing to vary (add a study: "
                               "section, or give --vary KEY=[value, ...])"]
    with pytest.raises(SpecError, match="expected a list of values"):
        load_study(path, vary=["seed=3"])


def test_the_cli_refuses_bad_study_input_with_exit_2(spec_file):
    path = spec_file(STUDY.replace("loss_weights.pseudo:", "loss_weights.psuedo:"))
    for args in (["study", str(path)], ["validate", str(path)], ["plan", str(path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(f"{where(path, 'loss_weights.psuedo')}: loss_weights.psuedo: unknown key")


def test_run_ignores_the_study_and_plan_shows_the_trials(spec_file):
    from sgl.engine.plan.compile import compile_spec
    from sgl.engine.rundir.setup import resolved_yaml

    with_study, without = compile_spec(spec_file(STUDY)), compile_spec(spec_file(MINI_SPEC, "plain.yaml"))
    assert with_study.plan == without.plan
    assert resolved_yaml(with_study) == resolved_yaml(without)  # a trial's run directory records no study
    result = CliRunner().invoke(main, ["plan", str(spec_file(STUDY))])
    assert result.exit_code == 0, result.output
    assert "study: 4 trial(s), local executor" in result.output
    assert "t003_seed-1_pseudo-2.0" in result.output and "seed=1 loss_weights.pseudo=2.0" in result.output
    result = CliRunner().invoke(main, ["validate", str(spec_file(STUDY))])
    assert result.output.endswith("3 search epochs; a study of 4 trials)\n")


def test_trials_times_threads_never_exceed_the_cores():
    assert choose(4, 2) == choose(4, 2, parallel=None, threads=None)
    assert (choose(4, 2).parallel, choose(4, 2).threads) == (2, 1)   # side by side: small trials scale poorly
    assert (choose(1, 2).parallel, choose(1, 2).threads) == (1, 2)   # one trial: every core
    assert (choose(5, 16, threads=4).parallel, choose(5, 16, threads=4).threads) == (4, 4)
    assert (choose(3, 16, parallel=2).parallel, choose(3, 16, parallel=2).threads) == (2, 8)
    gpus = choose(8, 16, ("0", "1"))
    assert (gpus.parallel, gpus.threads, gpus.gpus) == (2, 8, ("0", "1"))  # one trial per device
    with pytest.raises(StudyError, match="4 busy threads on 2 core"):
        choose(4, 2, parallel=2, threads=2)


def test_plan_estimate_times_each_distinct_trial_once(spec_file):
    path = spec_file(STUDY.replace("    loss_weights.pseudo: [0.5, 2.0]\n", ""))  # two seeds: one distinct trial
    result = CliRunner().invoke(main, ["plan", str(path), "--estimate", "--iterations", "1"])
    assert result.exit_code == 0, result.output
    assert "estimate of the study here:" in result.output
    assert "(the spec's own values): " in result.output and " s per trial × 2" in result.output
    assert "wall time about" in result.output


def test_every_ray_node_must_see_the_study_directory(tmp_path):
    from sgl.engine.study.on_ray import _probe

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\n")
    probe = tmp_path / ".probe"
    assert "cannot read" in _probe(str(probe), "token", str(spec))
    probe.write_text("token")
    assert _probe(str(probe), "token", str(spec)) is None
    assert "another file" in _probe(str(probe), "other", str(spec))
    assert "does not see the spec" in _probe(str(probe), "token", str(tmp_path / "gone.yaml"))


def test_sgl_run_says_it_runs_the_spec_once_and_ignores_the_study(spec_file, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("not empty")
    path = spec_file(STUDY)
    result = CliRunner().invoke(main, ["run", str(path), "--run-dir", str(taken)])  # refused: its directory is taken
    assert result.exit_code == 2
    assert (f"note: {path} has a study: section; sgl run runs the spec once with its own values (sgl study {path} "
            "runs the study's trials)") in result.stderr
    assert "note:" not in CliRunner().invoke(main, ["run", str(path), "--run-dir", str(taken), "-q"]).stderr
