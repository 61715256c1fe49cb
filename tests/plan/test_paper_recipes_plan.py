"""The shipped paper recipes plan as their authors ran them: SGL with P-DARTS and PC-DARTS on
CIFAR-10, the no-warm-up ablation, and SGL on ImageNet (the search with two PC-DARTS learners,
specs/paper/sgl_pcdarts_imagenet.yaml, and the evaluation of a genotype file from a run directory,
specs/paper/eval_sgl_imagenet.yaml)."""

from __future__ import annotations

from conftest import SPECS
from sgl.engine.plan.compile import compile_spec

SEARCH = SPECS / "paper" / "sgl_pcdarts_imagenet.yaml"
EVALUATE = SPECS / "paper" / "eval_sgl_imagenet.yaml"


def test_shipped_p_darts_and_pc_darts_recipes_plan_as_the_authors_ran_them():
    pdarts = compile_spec(SPECS / "paper" / "sgl_pdarts_cifar10.yaml").plan
    for lp in pdarts.learners.values():
        assert lp.networks["W"].horizons == (25, 25, 25) and lp.networks["V"].horizons == (20, 20, 20)
        assert lp.arch_grad_clip == 5.0
    searches = [s for s in pdarts.train_stages if s.arch_from_epoch is not None]
    assert [s.arch_from_epoch - s.first_epoch + 5 for s in searches] == [15, 15, 15]  # A from phase-epoch 15
    assert [s.epochs for s in pdarts.train_stages] == [5, 20] * 3
    assert pdarts.hypergradient.running_stats == "update"
    pcdarts = compile_spec(SPECS / "paper" / "sgl_pcdarts_cifar10.yaml").plan
    (warmup, search) = pcdarts.train_stages
    assert (warmup.epochs, search.epochs, search.arch_from_epoch) == (15, 45, 30)
    for lp in pcdarts.learners.values():
        assert lp.networks["W"].horizons == (60,) and lp.networks["V"].horizons == (45,)
    # all 50,000 CIFAR training images, 25,000 / 25,000: 500 iterations of batch 50 per epoch
    assert pcdarts.data.subset is None and pcdarts.data.examples == {"train": 25000, "val": 25000}
    assert [s.iterations_per_epoch for s in pcdarts.train_stages] == [500, 500]
    ablation = compile_spec(SPECS / "paper" / "ablation_no_warmup.yaml").plan
    assert ablation.total_epochs == 45


def test_the_sgl_imagenet_search_plans_as_their_script_runs():
    plan = compile_spec(SEARCH).plan
    warmup, search = plan.train_stages
    assert (warmup.epochs, search.epochs) == (10, 45)
    assert search.arch_from_epoch == 45  # --begin 35 after 10 W-only epochs: epoch 45 of 55
    assert plan.total_epochs == 55
    assert plan.data.batch_size == 1024 and plan.data.unlabeled == "train"
    assert (plan.data.split_train, plan.data.split_val, plan.data.dataset.subset) == (0.8, 0.2, 0.125)
    for lp in plan.learners.values():
        assert lp.networks["W"].horizons == (55,) and lp.networks["V"].horizons == (45,)
        assert lp.arch_grad_clip == 5.0
    assert plan.hypergradient.running_stats == "update"
    (evaluate,) = [s for s in plan.stages if s.type == "evaluate"]
    assert evaluate.learner == "learner1"


def test_the_evaluation_takes_a_genotype_file_and_clears_the_base_expectation():
    compiled = compile_spec(EVALUATE)
    (stage,) = compiled.spec.stages
    assert stage.genotype == "genotypes/pc_darts_imagenet.json" and stage.protocol == "pc_darts_imagenet"
    assert (stage.batch_size, stage.optimizer.lr, stage.schedule.warmup_epochs, stage.epochs) == (1024, 0.5, 5, 250)
    assert compiled.spec.expect == [] and compiled.plan.expect == ()
