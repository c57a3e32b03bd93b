"""Run folders, by job: :mod:`.folder` (the layout, records, writer lock and checkpoints of one run folder),
:mod:`.naming` (what a run is called and records about how it was asked for), :mod:`.trust` (what a run folder
may import), :mod:`.records` (reading runs back) and :mod:`.tables` (runs as rich tables)."""

from .folder import (CONFIG_FILE, RUN_CONTENTS, RUN_MARKERS, RunDir, RunLockedError, RunPathError, atomic_write_text,
                     effective_state)
from .naming import NAME_IGNORED_KEYS, NAME_LIMIT, changes_model, run_info, run_name, shorten_name
from .records import RunRecord, config_diff, find_runs, flatten, is_run_dir, read_eval_metrics, read_run
from .trust import UntrustedPluginError, check_plugins, untrusted_plugins

__all__ = ["CONFIG_FILE", "NAME_IGNORED_KEYS", "NAME_LIMIT", "RUN_CONTENTS", "RUN_MARKERS", "RunDir",
           "RunLockedError", "RunPathError", "RunRecord", "UntrustedPluginError", "atomic_write_text",
           "changes_model", "config_diff", "effective_state", "find_runs", "flatten", "is_run_dir",
           "read_eval_metrics", "read_run", "run_info", "run_name", "shorten_name", "check_plugins", "untrusted_plugins"]
