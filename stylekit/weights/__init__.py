"""Pretrained weights, one path for every component: where a file comes from (:mod:`.files`), how it is
read without running pickled code (:mod:`.state`, :mod:`.unpickle`), how it is loaded strictly into a
module (:func:`load_pretrained`), and the frozen-network base that backbones and depth networks share
(:class:`FrozenNetwork`). See ``docs/weights.md`` for every published file stylekit uses.
"""

from __future__ import annotations

from .files import (ENV_OFFLINE, ENV_WEIGHTS_DIR, WeightsFile, cache_dir, download, git_blob_sha1, hash_prefix,
                    offline, resolve_weights, sha256sum, verify, weights_dir)
from .identity import WeightsSource, identify, missing_files
from .network import FrozenNetwork
from .state import (StateDict, WeightsChoice, load_pretrained, load_state, mismatch, parse_weights_option,
                    read_state_dict, resolve_choice, unwrap)
from .unpickle import PickledModules, read_torch_file

__all__ = ["ENV_OFFLINE", "ENV_WEIGHTS_DIR", "FrozenNetwork", "PickledModules", "StateDict", "WeightsChoice",
           "WeightsFile", "WeightsSource", "cache_dir", "download", "git_blob_sha1", "hash_prefix", "identify",
           "load_pretrained", "load_state", "mismatch", "missing_files", "offline", "parse_weights_option", "read_state_dict", "read_torch_file", "resolve_choice", "resolve_weights",
           "sha256sum", "unwrap", "verify", "weights_dir"]
