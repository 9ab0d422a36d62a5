"""stop-tui: a terminal workbench for supervised recursive self-improvement (STOP).

Layers, lowest first (dependencies point downward only):

- ``stop_tui.errors`` / ``paths`` / ``keymap``  one-line errors, data folders, the app's keys
- ``stop_tui.untrusted`` the one sanitiser for untrusted text (shown, never interpreted)
- ``stop_tui.sandbox``  isolated execution of untrusted code
- ``stop_tui.tasks``    downstream tasks, public utilities and hidden evaluators
- ``stop_tui.lm``       language-model backends, budgets, transcripts, the demo model
- ``stop_tui.config``   settings: stop.toml < environment < flags
- ``stop_tui.store``    the git run store
- ``stop_tui.engine``   the STOP loop, meta-utility, approvals, audit, events
- ``stop_tui.tui`` / ``stop_tui.cli``  front ends
"""

__version__ = "0.1.0"
