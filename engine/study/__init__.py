"""Studies: seeds × variants of one spec, each trial an ordinary run, summarised as a paper's table.

``trials`` (the trials of a spec's ``study:`` section, each compiled), ``manifest`` (the study
directory and study.json), ``driver`` (start and resume, crash-only), ``launch`` (a trial's next
step and its end, read from its run directory), ``resources`` (trials at once × threads ≤ cores),
``local`` / ``on_ray`` (executors), ``display`` (progress), ``table`` and ``report`` (the table),
``estimate`` (`sgl plan --estimate` of a study), ``opened`` (what ``sgl.open_study`` returns).
"""
