"""`sgl report`: figures, tables and one HTML page (with a Markdown twin) from run directories.

Modules: ``reading`` (run directories → numbers), ``figures``, ``tables``, ``pages`` (HTML and
Markdown from the templates in ``templates/``).

What it reads (docs/run-directory.md): ``run.json``, ``summary.json``, ``metrics.jsonl`` (``iter``, ``epoch``
and ``eval_epoch`` lines), ``genotypes/<learner>.json`` and ``genotypes/<learner>.history.jsonl``.
Missing pieces (a run still going, a crashed run) leave out what they would have drawn.

What it writes under ``out_dir``:

- ``figures/<run>_loss.{png,svg}``: training loss per learner, one panel per network (V's loss
  includes λ·pseudo), per logged iteration, else per epoch. ``CURVE_FIGSIZE`` at ``DPI``: 800 x 450 px.
- ``figures/<run>_accuracy.{png,svg}``: validation (solid) and training (dashed) accuracy per
  learner, one panel per network, per epoch from the epoch the network first trained. 800 x 450 px.
- ``figures/<run>_eval.{png,svg}``: evaluation stages' training loss and train / test accuracy
  per epoch. 800 x 450 px.
- ``figures/<run>_alpha_<learner>_<cell>.{png,svg}``: the architecture weights of each edge of each
  cell type of the learner's search space over the epochs, one panel per edge, one line per
  operation; an edge whose weights stay within ``FLAT_SPREAD`` says so. ``ALPHA_FIGSIZE`` at
  ``DPI``: 1200 x 800 px.
- ``figures/<run>_<learner>_<cell>.{png,svg,dot}``: cell diagrams of each final genotype (and of
  each evaluated genotype), drawn by its search space; into the run directory itself, the derive
  stage's ``cell_<learner>_<cell>`` diagrams instead (figures are never drawn twice: those newer
  than the run's records are reused).
- ``figures/groups_test_error.{png,svg}``: mean ± std test error per group, when several runs
  are reported. 800 x 450 px.
- ``report.html`` (self-contained: inline style, figures referenced relatively; it says when a
  figure cannot be loaded) and ``report.md``, both with the spec as run.

The results table follows the papers' layout: method, dataset, test error (%), params (M),
search cost (GPU-days on GPUs, CPU-hours on CPUs). Test errors come from evaluation stages
(final and best, labelled); a run without one shows 100 − the test accuracy of the best learner's
result network (V with stage 2, else W), labelled as such. Runs are grouped by spec name (or by ``groups``) and each
group shows mean ± std over its runs (seeds).
"""

from ..errors import ReportError
from .figures import ALPHA_FIGSIZE, CURVE_FIGSIZE, DPI
from .pages import write_report
from .reading import RunData, load_run

__all__ = ["ALPHA_FIGSIZE", "CURVE_FIGSIZE", "DPI", "ReportError", "RunData", "load_run", "write_report"]
