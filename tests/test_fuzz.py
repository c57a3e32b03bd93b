"""Bad input, as a careless user or an attacker would give it: every case must end in one clean error.

Each case runs the real command in-process and asserts what the user sees: a non-zero exit code, exactly
one ``error:`` paragraph that names the key, option or file at fault, and no traceback. Images, recipes
and networks are tiny, so the whole file runs in well under a minute on a CPU.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from stylekit.checkpoint import MODEL_FILE, STATE_FILE, latest_checkpoint, save_model
from stylekit.cli import app
from stylekit.config import MAX_RECIPE_BYTES
from stylekit.models.transformer import TransformerNet
from stylekit.testing import PLUGIN, make_images

# -- helpers ----------------------------------------------------------------------


def cli(*args, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def assert_clean_error(result, *names: str) -> str:
    """Non-zero exit, handled by the CLI (no exception escaped), one ``error:`` paragraph naming ``names``."""
    out = result.output
    assert result.exit_code != 0, out
    assert isinstance(result.exception, SystemExit), f"unhandled {result.exception!r}\n{out}"
    assert "Traceback" not in out, out
    assert out.count("error:") == 1, out
    message = out[out.index("error:"):].strip()
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    assert not message.startswith("error: unexpected"), message  # a known kind of mistake, said as such
    flat = " ".join(message.split())
    for name in names:
        assert " ".join(str(name).split()) in flat, f"{name!r} not named in: {message}"
    return message


def tiny_raw(root: Path) -> dict:
    """A recipe that trains in well under a second: tiny images, the tiny stand-in VGG, 2 steps."""
    return {
        "name": "fuzz",
        "plugins": [PLUGIN],
        "data": {"root": str(root / "content"), "image_size": 16, "workers": 0},
        "style": {"images": [str(root / "style.jpg")], "size": 16},
        "model": {"channels": 4, "residual_blocks": 1},
        "backbone": {"name": "tiny_vgg"},
        "losses": {"content": {"weight": 1.0, "layer": "relu2_2"},
                   "style": {"weight": 10.0, "layers": ["relu1_2", "relu2_2"]}},
        "schedule": {"iterations": 2, "batch_size": 2},
        "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 2},
        "precision": "fp32", "device": "cpu", "output_dir": str(root / "runs"),
    }


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_recipe(path: Path, raw: dict | str) -> Path:
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def set_key(raw: dict, dotted: str, value) -> dict:
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_claiming(width: int, height: int, header_crc: int | None = None) -> bytes:
    """A few hundred bytes that claim a width × height RGB image (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr, header_crc)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def bad_image_bytes(kind: str, good: bytes) -> bytes:
    return {"empty": b"", "text": b"just some notes\n", "truncated_jpeg": good[: len(good) // 2],
            "jpeg_header_only": good[:20], "png_bomb": png_claiming(40_000, 40_000),
            "png_bad_crc": png_claiming(4, 4, header_crc=1234), "random": os.urandom(300),
            "html": b"<html><body>404 not found</body></html>"}[kind]


BAD_IMAGE_KINDS = ["empty", "text", "truncated_jpeg", "jpeg_header_only", "png_bomb", "png_bad_crc", "random", "html"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Content and style images, a tiny finished run (for checkpoints and resuming) and one of each bad file."""
    root = tmp_path_factory.mktemp("fuzz")
    make_images(root / "content", 4, size=(24, 20))
    make_images(root / "style_src", 1, size=(20, 20), seed=9)[0].rename(root / "style.jpg")
    good = (root / "style.jpg").read_bytes()
    (root / "bad").mkdir()
    for kind in BAD_IMAGE_KINDS:
        (root / "bad" / f"{kind}.png").write_bytes(bad_image_bytes(kind, good))
    (root / "a_file").write_text("not a folder")
    recipe = write_recipe(root / "fuzz.yaml", tiny_raw(root))
    result = cli("train", recipe, "--run-dir", root / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    return root


# -- recipes: YAML and file-level problems ----------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

RECIPE_FILES = {
    # id: (recipe text, or a callable(root) → path; words the error must contain)
    "billion_laughs_top": (BOMB, ["alias"]),
    "billion_laughs_in_presets": ("presets:\n  p:\n" + "".join("    " + line + "\n" for line in BOMB.splitlines()),
                                  ["alias"]),
    "recursive_anchor": ("a: &a [1, *a]\n", ["recursive"]),
    "deep_nesting": ("a: " + "[" * 400 + "]" * 400 + "\n", ["nested"]),
    "deep_mapping": ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)), ["nested"]),
    "not_yaml": ("data: [unclosed\n", ["not valid YAML"]),
    "tab_indent": ("data:\n\troot: x\n", ["not valid YAML"]),
    "python_tag": ("data: !!python/object/apply:os.system ['touch PWNED']\n", ["not valid YAML"]),
    "top_level_list": ("- a\n- b\n", ["must be a mapping"]),
    "top_level_scalar": ("just a string\n", ["must be a mapping"]),
    "non_string_key": ("1: one\n", ["keys must be names"]),
    "binary": (lambda root: write_bytes(root / "bin.yaml", b"\xff\xfe\x00\x01garbage"), ["not UTF-8"]),
    "too_large": (lambda root: write_recipe(root / "big.yaml", "# " + "x" * MAX_RECIPE_BYTES + "\n"),
                  ["limited to"]),
    "a_folder": (lambda root: (root / "dir.yaml").mkdir() or root / "dir.yaml", ["not a regular file"]),
    "missing": (lambda root: root / "nope.yaml", ["does not exist"]),
    "device_file": (lambda root: Path("/dev/null"), ["not a regular file"]),
    "extends_list": ("extends: [a, b]\n", ["extends"]),
    "extends_number": ("extends: 5\n", ["extends"]),
    "extends_missing": ("extends: nowhere.yaml\n", ["nowhere.yaml", "does not exist"]),
    "extends_self": (lambda root: write_recipe(root / "self.yaml", "extends: self.yaml\n"), ["extends itself"]),
    "extends_cycle": (lambda root: (write_recipe(root / "c1.yaml", "extends: c2.yaml\n"),
                                    write_recipe(root / "c2.yaml", "extends: c1.yaml\n"))[0], ["extends itself"]),
    "extends_chain_too_long": (lambda root: [write_recipe(root / f"ch{i}.yaml", f"extends: ch{i + 1}.yaml\n")
                                             for i in range(30)][0], ["chain longer"]),
    "extends_binary": (lambda root: (write_bytes(root / "b.bin", b"\x80\x81"),
                                     write_recipe(root / "eb.yaml", "extends: b.bin\n"))[1], ["not UTF-8"]),
    "nul_in_path": ('data: {root: "a\\0b"}\nstyle: {images: [s.jpg]}\nlosses: {tv: {weight: 1}}\n', ["data.root",
                                                                                                    "NUL"]),
    "path_too_long": ("data: {root: " + "d" * 300 + "/x}\nstyle: {images: [s.jpg]}\nlosses: {tv: {weight: 1}}\n",
                      ["data.root", "longer"]),
    "not_a_recipe": ("root:x:0:0:root:/root:/bin/bash: 1\ndaemon:x:1:1: 2\n", ["required key is missing"]),
}


@pytest.mark.parametrize("case", sorted(RECIPE_FILES))
def test_recipe_file_problems_are_one_paragraph(world, tmp_path, case):
    content, words = RECIPE_FILES[case]
    path = content(tmp_path) if callable(content) else write_recipe(tmp_path / "r.yaml", content)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a YAML payload that ran `touch PWNED` would leave the file here
    try:
        assert_clean_error(cli("config", path), *words)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "PWNED").exists()


# -- recipes: every section given wrong types and values --------------------------------

WRONG_VALUES = [
    ("name", ["a", "list"]), ("description", {"a": 1}),
    ("data", 5), ("data.root", 5), ("data.root", None), ("data.image_size", 8), ("data.image_size", "big"),
    ("data.image_size", 1e400), ("data.crop", "zoom"), ("data.workers", -1), ("data.extensions", "jpg"),
    ("data.cache_dir", [1]), ("data.unknown", 1),
    ("style", None), ("style.images", []), ("style.images", "style.jpg"), ("style.images", [{"a": 1}]),
    ("style.size", 0),
    ("model", "big"), ("model.channels", 2), ("model.channels", "wide"), ("model.norm", "group"),
    ("model.upsample", "pixelshuffle"), ("model.residual_blocks", -1),
    ("backbone.name", "resnet9000"), ("backbone.options", 5), ("backbone.options.width", 0),
    ("backbone.options.nope", 1),
    ("losses", []), ("losses", "style"), ("losses", {}), ("losses.style", 5), ("losses.style.weight", "heavy"),
    ("losses.style.layrs", ["relu1_2"]), ("losses.nonexistent", {"weight": 1}), ("losses.content.term", "nope"),
    ("optim.lr", 0), ("optim.lr", -1), ("optim.lr", "fast"), ("optim.betas", [0.9]), ("optim.betas", "x"),
    ("optim.weight_decay", -1),
    ("schedule.iterations", "many"), ("schedule.iterations", -5), ("schedule.iterations", 0),
    ("schedule.batch_size", 0), ("schedule.batch_size", [4]), ("schedule.seed", "x"),
    ("log", []), ("log.every", 0), ("log.keep_checkpoints", 0), ("log.sample_images", "a.jpg"),
    ("log.num_samples", 0),
    ("device", 5), ("precision", "fp8"), ("output_dir", [1]),
    ("performance.prefetch_factor", 0), ("performance.finite_check_every", 0), ("performance.compile", "yes please"),
    ("presets", 5), ("presets", [1]), ("presets.p", 5), ("plugins", 5), ("plugins", "x"), ("plugins", [5]),
    ("lossses", {}),
]


@pytest.mark.parametrize("key,value", WRONG_VALUES, ids=[f"{k}={v!r:.20}" for k, v in WRONG_VALUES])
def test_wrong_recipe_values_name_the_key(world, tmp_path, key, value):
    recipe = write_recipe(tmp_path / "r.yaml", set_key(tiny_raw(world), key, value))
    args = ["--preset", "p"] if key.startswith("presets") else []
    named = {"losses.nonexistent": "nonexistent", "losses.content.term": "losses.content"}.get(key, key)
    assert_clean_error(cli("config", recipe, *args), named)


OVERRIDES = [
    (["--set", "schedule.iterations"], "expected KEY.PATH=VALUE"),
    (["--set", "=5"], "expected KEY.PATH=VALUE"),
    (["--set", "a..b=1"], "expected KEY.PATH=VALUE"),
    (["--set", "losses.nope.weight=1"], "unknown loss term 'nope'"),
    (["--set", "schedule.iterations.deeper=1"], "schedule.iterations is a int"),
    (["--set", "schedule.iterations=[1, 2]"], "schedule.iterations"),
    (["--set", "schedule.iterations={a: 1"], "not valid YAML"),
    (["--set", "presets.x=&a [*a]"], "recursive"),
    (["--set", "presets.x=[" + ", ".join(["&a [x,x,x,x,x,x,x,x,x,x]"] + ["*a"] * 3) + "]"], "presets"),
    (["--set", "description=" + "[" * 500 + "]" * 500], "nested"),
    (["--set", "data.root=a\0b"], "data.root"),
    (["--without", "nope"], "unknown loss term 'nope'"),
    (["--only", "nope"], "unknown loss term 'nope'"),
    (["--without", "content,style"], "no loss terms left"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--plugin", "no_such_module_xyz"], "no_such_module_xyz"),
    (["--plugin", "/nonexistent/plugin.py"], "plugin.py"),
]


@pytest.mark.parametrize("args,words", OVERRIDES, ids=[" ".join(a)[:40] for a, _ in OVERRIDES])
def test_bad_command_line_overrides(world, args, words):
    assert_clean_error(cli("config", world / "fuzz.yaml", *args), words)


def test_alias_bomb_in_a_set_value_is_bounded(world):
    level = "{a: &a [x,x,x,x,x,x,x,x,x,x]"
    for prev, name in zip("abcde", "bcdef"):
        level += f", {name}: &{name} [{','.join(['*' + prev] * 10)}]"
    bomb = level + "}"  # 10^6 values once expanded
    assert_clean_error(cli("config", world / "fuzz.yaml", "--set", f"presets.x={bomb}"), "presets.x", "alias")


# -- training: found before the first step ----------------------------------------------

def _train_cases(root: Path) -> dict:
    bad = root / "bad"
    return {
        # id: (--set overrides, words)
        "style_missing": ([f"style.images=[{root}/nope.jpg]"], ["style.images[0]", "nope.jpg", "does not exist"]),
        "style_is_folder": ([f"style.images=[{root}/content]"], ["style.images[0]", "is a folder"]),
        "style_not_image": ([f"style.images=[{bad}/text.png]"], ["style.images", "none of the 1"]),
        "style_truncated": ([f"style.images=[{bad}/truncated_jpeg.png]"], ["style.images", "truncated_jpeg.png"]),
        "style_bomb": ([f"style.images=[{bad}/png_bomb.png]"], ["style.images", "decompression-bomb"]),
        "style_all_bad": ([f"style.images=[{bad}/empty.png,{bad}/html.png,{bad}/random.png]"],
                          ["style.images", "none of the 3"]),
        "style_fifo": ([f"style.images=[{root}/fifo.jpg]"], ["style.images[0]", "not a regular file"]),
        "sample_missing": ([f"log.sample_images=[{root}/nope.jpg]"], ["log.sample_images[0]", "does not exist"]),
        "sample_all_bad": ([f"log.sample_images=[{bad}/empty.png,{bad}/text.png]"], ["log.sample_images"]),
        "root_is_file": ([f"data.root={root}/a_file"], ["data.root", "is a file"]),
        "root_missing": ([f"data.root={root}/nowhere"], ["data.root", "does not exist"]),
        "root_empty": ([f"data.root={root}/empty_dir"], ["data.root", "no images"]),
        "root_all_bad": ([f"data.root={bad}"], ["data.root", "none of the 8"]),
        "root_no_matching_suffix": (["data.extensions=[.exr]"], ["data.root", "no images"]),
        "cache_dir_is_file": ([f"data.cache_dir={root}/a_file"], ["data.cache_dir", "is a file"]),
        "cache_dir_under_file": ([f"data.cache_dir={root}/a_file/cache"], ["data.cache_dir", "a_file is a file"]),
        "output_dir_is_file": ([f"output_dir={root}/a_file", "--no-run-dir"], ["output_dir", "is a file"]),
        "device_cuda": (["device=cuda"] if not torch.cuda.is_available() else ["device=cuda:99"], ["device", "cuda"]),
        "device_cuda_index": (["device=cuda:99"], ["device", "cuda:99"]),
        "device_bogus": (["device=bogus"], ["device", "bogus"]),
        "device_meta": (["device=meta"], ["device", "meta"]),
        "device_mps": (["device=mps"], ["device", "mps"]) if not torch.backends.mps.is_available() else
        (["device=bogus2"], ["bogus2"]),
        "device_empty": (["device=''"], ["device"]),
        "style_layer": (["losses.style.layers=[relu9_9]"], ["losses.style", "relu9_9", "relu1_2"]),
        "content_layer": (["losses.content.layer=pool99"], ["losses.content", "pool99"]),
        "huge_channels": (["model.channels=100000"], ["model", "channels=100000"]),
        "huge_blocks": (["model.residual_blocks=100000"], ["model", "residual_blocks=100000"]),
        "memory_exceeding_model": (["model.channels=1024", "model.residual_blocks=64"], ["model"]),
    }


TRAIN_CASES = sorted(_train_cases(Path("/x")))


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_training_mistakes_are_found_before_the_first_step(world, tmp_path, case):
    (world / "empty_dir").mkdir(exist_ok=True)
    if not (world / "fifo.jpg").exists():
        os.mkfifo(world / "fifo.jpg")
    overrides, words = _train_cases(world)[case]
    run_dir = [] if "--no-run-dir" in overrides else ["--run-dir", tmp_path / "run"]
    sets = [a for s in overrides if s != "--no-run-dir" for a in ("--set", s)]
    result = cli("train", world / "fuzz.yaml", *sets, *run_dir, "--no-progress")
    assert_clean_error(result, *words)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
    if case == "memory_exceeding_model" and "GiB" not in result.output:
        assert "at most" in result.output  # refused by the size bound rather than the memory estimate


def test_out_of_memory_during_training_says_what_to_lower(world, tmp_path, monkeypatch):
    from stylekit.trainer import Trainer

    def exhausted(self, images):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", exhausted)
    result = cli("train", world / "fuzz.yaml", "--run-dir", tmp_path / "run", "--no-progress")
    message = assert_clean_error(result, "out of memory", "schedule.batch_size", "data.image_size")
    assert result.exit_code == 3, message


def test_unreadable_images_are_skipped_and_counted_in_training_and_samples(world, tmp_path):
    content = tmp_path / "content"
    make_images(content, 3, size=(24, 20))
    good = (content / "img_000.jpg").read_bytes()
    (content / "a_truncated.jpg").write_bytes(good[: len(good) // 2])  # sorts first: the sample grid's first file
    (content / "b_text.jpg").write_text("not an image")
    raw = tiny_raw(world)
    raw["data"]["root"] = str(content)
    raw["log"]["sample_images"] = [str(content / "a_truncated.jpg"), str(content / "img_001.jpg")]
    recipe = write_recipe(tmp_path / "r.yaml", raw)
    result = cli("train", recipe, "--run-dir", tmp_path / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "finished" and status["skipped_images"] >= 1
    assert "a_truncated.jpg" in "".join(result.output.split()) and "Traceback" not in result.output


# -- resuming from damaged checkpoints ---------------------------------------------------

class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def _damage_train_state(ckpt: Path, how: str) -> None:
    state, meta = ckpt / STATE_FILE, ckpt / "meta.json"
    if how == "meta_not_json":
        meta.write_text("{not json")
    elif how == "meta_is_list":
        meta.write_text("[1, 2]")
    elif how == "meta_binary":
        meta.write_bytes(b"\xff\xfe\xfa")
    elif how == "meta_missing":
        meta.unlink()
    elif how == "state_pickle_payload":
        state.write_bytes(pickle.dumps({"step": Payload()}))
    elif how == "state_torch_payload":
        torch.save({"step": 1, "payload": Payload()}, state)
    elif how == "state_truncated":
        state.write_bytes(state.read_bytes()[:100])
    elif how == "state_empty":
        state.write_bytes(b"")
    elif how == "state_missing_keys":
        torch.save({"step": 2}, state)
    elif how == "state_wrong_types":
        torch.save({"step": "two", "optimizer": [], "scaler": {}, "torch_rng": 1, "elapsed": 0.0, "skipped": []},
                   state)
    elif how == "state_missing":
        state.unlink()
    elif how == "model_truncated":
        (ckpt / MODEL_FILE).write_bytes((ckpt / MODEL_FILE).read_bytes()[:500])
    elif how == "model_other_network":
        save_model(TransformerNet({"channels": 8, "residual_blocks": 1}), ckpt / MODEL_FILE)


RESUME_CASES = {"meta_not_json": "meta.json", "meta_is_list": "meta.json", "meta_binary": "meta.json",
                "meta_missing": "meta.json", "state_pickle_payload": STATE_FILE, "state_torch_payload": STATE_FILE,
                "state_truncated": STATE_FILE, "state_empty": STATE_FILE, "state_missing_keys": STATE_FILE,
                "state_wrong_types": STATE_FILE, "state_missing": STATE_FILE, "model_truncated": MODEL_FILE,
                "model_other_network": MODEL_FILE}


@pytest.mark.parametrize("how", sorted(RESUME_CASES))
def test_resuming_from_a_damaged_checkpoint(world, tmp_path, how):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    _damage_train_state(latest_checkpoint(run), how)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert_clean_error(cli("train", "--resume", run, "--no-progress"), RESUME_CASES[how])
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()  # refused, never run


# -- checkpoints: crafted safetensors files ----------------------------------------------

def _split(file: Path) -> tuple[dict, bytes]:
    blob = file.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _first(header: dict) -> str:
    return sorted(k for k in header if k != "__metadata__")[0]


def _with(header: dict, **metadata) -> dict:
    header = json.loads(json.dumps(header))
    header["__metadata__"].update(metadata)
    return header


def _edit_tensor(header: dict, **fields) -> dict:
    header = json.loads(json.dumps(header))
    header[_first(header)].update(fields)
    return header


def _options(**changes) -> str:
    return json.dumps({"norm": "instance", "upsample": "deconv", "channels": 4, "residual_blocks": 1, **changes})


CHECKPOINTS = {
    # id: (callable(header, data) → file bytes, words)
    "zero_bytes": (lambda h, d: b"", ["too short"]),
    "seven_bytes": (lambda h, d: b"\x01" * 7, ["too short"]),
    "huge_header_length": (lambda h, d: _join(h, d, length=2**63), ["header claims"]),
    "header_longer_than_file": (lambda h, d: _join(h, d, length=len(json.dumps(h)) + len(d) + 10), ["header claims"]),
    "header_not_json": (lambda h, d: _join(b"{this is not json" + b" " * 20, d), ["not JSON"]),
    "header_not_utf8": (lambda h, d: _join(b"\xff\xfe" * 10, d), ["not JSON"]),
    "header_is_list": (lambda h, d: _join(b"[1, 2, 3]", d), ["not a JSON object"]),
    "header_deeply_nested": (lambda h, d: _join(b"[" * 100_000 + b"]" * 100_000, d), ["not JSON"]),
    "metadata_not_dict": (lambda h, d: _join({**h, "__metadata__": [1]}, d), ["__metadata__"]),
    "metadata_non_string": (lambda h, d: _join({**h, "__metadata__": {"format": 5}}, d), ["__metadata__"]),
    "unknown_dtype": (lambda h, d: _join(_edit_tensor(h, dtype="F128"), d), ["unknown dtype"]),
    "negative_shape": (lambda h, d: _join(_edit_tensor(h, shape=[-1, 3]), d), ["invalid shape"]),
    "float_shape": (lambda h, d: _join(_edit_tensor(h, shape=[1.5]), d), ["invalid shape"]),
    "huge_shape": (lambda h, d: _join(_edit_tensor(h, shape=[2**39, 2**39]), d), ["needs"]),
    "offsets_beyond_file": (lambda h, d: _join(_edit_tensor(h, data_offsets=[0, 10**12]), d), ["outside"]),
    "offsets_reversed": (lambda h, d: _join(_edit_tensor(h, data_offsets=[8, 0]), d), ["outside"]),
    "offsets_not_ints": (lambda h, d: _join(_edit_tensor(h, data_offsets=["0", "8"]), d), ["outside"]),
    "missing_field": (lambda h, d: _join({**h, _first(h): {"dtype": "F32"}}, d), ["needs exactly"]),
    "truncated_data": (lambda h, d: _join(h, d[: len(d) // 2]), ["outside"]),
    "trailing_garbage": (lambda h, d: _join(h, d + b"\0" * 64), ["cover"]),
    "overlapping_tensors": (lambda h, d: _join(_overlap(h), d), ["overlapping"]),
    "no_format": (lambda h, d: _join({**h, "__metadata__": {}}, d), ["not a stylekit transformer"]),
    "other_format": (lambda h, d: _join(_with(h, format="diffusers.unet"), d), ["not a stylekit transformer"]),
    "version_not_number": (lambda h, d: _join(_with(h, format_version="one"), d), ["format_version"]),
    "future_version": (lambda h, d: _join(_with(h, format_version="99"), d), ["Upgrade stylekit"]),
    "no_model_options": (lambda h, d: _join(_drop_options(h), d), ["no model_options"]),
    "options_not_json": (lambda h, d: _join(_with(h, model_options="{oops"), d), ["model_options"]),
    "options_unknown_key": (lambda h, d: _join(_with(h, model_options=_options(wings=2)), d), ["model_options"]),
    "options_bad_norm": (lambda h, d: _join(_with(h, model_options=_options(norm="group")), d), ["model_options"]),
    "options_terabyte_channels": (lambda h, d: _join(_with(h, model_options=_options(channels=10**9)), d),
                                  ["channels=1000000000"]),
    "options_million_blocks": (lambda h, d: _join(_with(h, model_options=_options(residual_blocks=10**6)), d),
                               ["residual_blocks=1000000"]),
    "options_disagree_with_tensors": (lambda h, d: _join(_with(h, model_options=_options(channels=8)), d),
                                      ["expected"]),
    "options_disagree_blocks": (lambda h, d: _join(_with(h, model_options=_options(residual_blocks=3)), d),
                                ["missing"]),
    "wrong_dtype_kind": (lambda h, d: _join(_edit_tensor(h, dtype="I32"), d), ["is I32"]),
    "nan_weights": (lambda h, d: _join(h, _nan_first(h, d)), ["NaN"]),
    "a_pickle": (lambda h, d: pickle.dumps({"weights": [1, 2, 3]}), ["not a valid safetensors"]),
    "a_jpeg": (lambda h, d: bytes(make_images_bytes()), ["not a valid safetensors"]),
}


def _overlap(header: dict) -> dict:
    header = json.loads(json.dumps(header))
    names = sorted((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
    (_, a), (_, b) = names[0], names[1]
    size = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
    if size <= header[a]["data_offsets"][1]:
        header[b]["data_offsets"] = [0, size]
    else:
        header[b]["data_offsets"] = [header[b]["data_offsets"][0] - 4, header[b]["data_offsets"][1] - 4]
    return header


def _drop_options(header: dict) -> dict:
    header = json.loads(json.dumps(header))
    header["__metadata__"].pop("model_options")
    return header


def _nan_first(header: dict, data: bytes) -> bytes:
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    begin = header[name]["data_offsets"][0]
    return data[:begin] + struct.pack("<f", float("nan")) + data[begin + 4:]


def make_images_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_crafted_checkpoints_are_refused_before_allocation(world, tmp_path, case):
    header, data = _split(latest_checkpoint(world / "run") / MODEL_FILE)
    build, words = CHECKPOINTS[case]
    file = tmp_path / "model.safetensors"
    file.write_bytes(build(header, data))
    assert_clean_error(cli("stylize", file, world / "style.jpg", "-o", tmp_path / "out.png"), str(file), *words)
    assert not (tmp_path / "out.png").exists()


def test_export_refuses_a_crafted_checkpoint_too(world, tmp_path):
    header, data = _split(latest_checkpoint(world / "run") / MODEL_FILE)
    file = tmp_path / "model.safetensors"
    file.write_bytes(_join(_with(header, model_options=_options(channels=10**9)), data))
    assert_clean_error(cli("export", file, "-f", "torchscript", "-o", tmp_path / "m.pt"), "channels=1000000000")


@pytest.mark.parametrize("case", ["missing", "empty_folder", "run_without_checkpoints"])
def test_checkpoint_paths_that_hold_no_model(world, tmp_path, case):
    target = {"missing": tmp_path / "nope", "empty_folder": tmp_path}[case] if case != "run_without_checkpoints" \
        else _run_without_checkpoints(world, tmp_path)
    said = "no such file or folder" if case == "missing" else "no checkpoint at"
    assert_clean_error(cli("stylize", target, world / "style.jpg", "-o", tmp_path / "o.png"), str(target), said)


def _run_without_checkpoints(world: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    shutil.rmtree(run / "checkpoints")
    return run


# -- stylize, export and depth options ------------------------------------------------------

def _stylize_cases(root: Path, tmp: Path) -> dict:
    image = root / "style.jpg"
    return {
        # id: (arguments after the checkpoint, words)
        "tile_1": ([image, "-o", tmp / "o.png", "--tile", "1"], ["--tile 1", "at least 64"]),
        "tile_negative": ([image, "-o", tmp / "o.png", "--tile", "-5"], ["--tile -5"]),
        "overlap_negative": ([image, "-o", tmp / "o.png", "--overlap", "-1"], ["--overlap -1"]),
        "overlap_too_big": ([image, "-o", tmp / "o.png", "--tile", "64", "--overlap", "40"], ["--overlap 40"]),
        "max_size_negative": ([image, "-o", tmp / "o.png", "--max-size", "-10"], ["--max-size -10"]),
        "max_size_zero": ([image, "-o", tmp / "o.png", "--max-size", "0"], ["--max-size 0"]),
        "batch_zero": ([image, "-o", tmp / "o.png", "--batch", "0"], ["--batch 0"]),
        "device_bogus": ([image, "-o", tmp / "o.png", "--device", "bogus"], ["--device", "bogus"]),
        "device_cuda_99": ([image, "-o", tmp / "o.png", "--device", "cuda:99"], ["--device", "cuda:99"]),
        "precision_fp8": ([image, "-o", tmp / "o.png", "--precision", "fp8"], ["--precision", "fp8"]),
        "input_missing": ([tmp / "nope.jpg", "-o", tmp / "o.png"], ["nope.jpg", "does not exist"]),
        "input_folder_empty": ([tmp / "empty", "-o", tmp / "out"], ["empty", "no images"]),
        "input_fifo": ([root / "fifo.jpg", "-o", tmp / "o.png"], ["fifo.jpg", "not a regular file"]),
        "input_all_unreadable": ([root / "bad", "-o", tmp / "out"], ["none of the 8"]),
        "input_text_file": ([root / "a_file", "-o", tmp / "o.png"], ["none of the 1"]),
        "output_txt": ([image, "-o", tmp / "o.txt"], ["-o", "o.txt", ".txt"]),
        "output_no_suffix_file": ([image, "-o", root / "a_file"], ["a_file"]),
        "output_file_for_many": ([root / "content", "-o", tmp / "o.png"], ["names one file", "4 inputs"]),
        "output_existing_file_for_many": ([root / "content", "-o", root / "a_file"], ["a_file is a file"]),
        "output_overwrites_input": ([root / "over" / "x.png", "-o", root / "over"], ["overwrite", "x.png"]),
        "video_to_png": ([root / "clip.mp4", "-o", tmp / "o.png"], ["a video is written as"]),
        "image_to_mp4": ([image, "-o", tmp / "o.mp4"], ["cannot write a .mp4 image"]),
    }


STYLIZE_CASES = sorted(_stylize_cases(Path("/x"), Path("/y")))


@pytest.mark.parametrize("case", STYLIZE_CASES)
def test_stylize_option_mistakes(world, tmp_path, case):
    (tmp_path / "empty").mkdir()
    (world / "over").mkdir(exist_ok=True)
    Image.new("RGB", (9, 9)).save(world / "over" / "x.png")
    (world / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + os.urandom(64))
    if not (world / "fifo.jpg").exists():
        os.mkfifo(world / "fifo.jpg")
    args, words = _stylize_cases(world, tmp_path)[case]
    assert_clean_error(cli("stylize", world / "run", *args), *words)


EXPORT_CASES = {
    "format_bogus": (["-f", "gif", "-o", "m.onnx"], ["--format", "gif"]),
    "opset_low": (["-f", "onnx", "-o", "m.onnx", "--opset", "5"], ["--opset 5", "between 12 and 20"]),
    "opset_high": (["-f", "onnx", "-o", "m.onnx", "--opset", "99"], ["--opset 99"]),
    "verify_size_tiny": (["-f", "onnx", "-o", "m.onnx", "--verify-size", "2"], ["--verify-size 2"]),
    "verify_size_huge": (["-f", "onnx", "-o", "m.onnx", "--verify-size", "100000"], ["--verify-size 100000"]),
    "output_folder": (["-f", "torchscript", "-o", "."], ["is a folder"]),
    "onnx_suffix_for_torchscript": (["-f", "torchscript", "-o", "m.onnx"], ["m.onnx", ".pt"]),
    "pt_suffix_for_onnx": (["-f", "onnx", "-o", "m.pt"], ["m.pt", ".onnx"]),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_export_option_mistakes(world, tmp_path, case):
    args, words = EXPORT_CASES[case]
    args = [tmp_path / a if a in ("m.onnx", "m.pt", ".") else a for a in args]
    assert_clean_error(cli("export", world / "run", *args), *words)


DEPTH_CASES = {
    "max_size_negative": (["--max-size", "-10"], ["--max-size -10"]),
    "option_without_value": (["--option", "seed"], ["--option", "KEY.PATH=VALUE"]),
    "option_unknown": (["--option", "wings=2"], ["wings"]),
    "option_bomb": (["--option", "seed=[&a [1,2], *a, *a]"], ["seed"]),
    "network_unknown": (["--network", "nope_depth"], ["nope_depth"]),
    "output_is_file": (["-o", "FILE"], ["--output", "is a file"]),
    "input_missing": (["INPUT_MISSING"], ["does not exist"]),
    "inputs_unreadable": (["BAD"], ["none of the 8"]),
}


@pytest.mark.parametrize("case", sorted(DEPTH_CASES))
def test_depth_option_mistakes(world, tmp_path, case):
    args, words = DEPTH_CASES[case]
    swap = {"FILE": world / "a_file", "INPUT_MISSING": tmp_path / "nope.jpg", "BAD": world / "bad"}
    args = [swap.get(a, a) for a in args]
    inputs = [] if any(a in ("INPUT_MISSING", "BAD") for a in DEPTH_CASES[case][0]) else [world / "style.jpg"]
    output = [] if "-o" in args else ["-o", tmp_path / "depth"]
    network = [] if "--network" in args else ["--network", "tiny_depth"]
    result = cli("depth", *inputs, *args, *output, *network, "--plugin", PLUGIN)
    message = assert_clean_error(result, *words)
    assert case != "option_bomb" or "alias" not in message or "expand" in message


@pytest.mark.parametrize("case", ["content_missing", "content_empty", "device_bogus", "style_unreadable"])
def test_evaluate_input_mistakes(world, tmp_path, case):
    (tmp_path / "empty").mkdir()
    args = {"content_missing": ["--content", tmp_path / "nope"],
            "content_empty": ["--content", tmp_path / "empty"],
            "device_bogus": ["--content", world / "content", "--device", "bogus"],
            "style_unreadable": ["--content", world / "content", "--style", world / "bad" / "text.png",
                                 "--depth-network", "tiny_depth", "--backbone", "tiny_vgg", "--plugin", PLUGIN]}[case]
    words = {"content_missing": ["--content", "does not exist"], "content_empty": ["--content", "no images"],
             "device_bogus": ["--device", "bogus"], "style_unreadable": ["--style", "text.png"]}[case]
    assert_clean_error(cli("evaluate", world / "run", *args, "-o", tmp_path / "eval", "--no-progress"), *words)


@pytest.mark.parametrize("name", ["bad\n\nname.jpg", "[bold red]markup[/].jpg", "\x1b]0;pwned\x07title.jpg",
                                  "\x1b[2Jclear.jpg", "-o.jpg", "ünï cödé 📷.jpg"])
def test_hostile_file_names_stay_one_plain_paragraph(world, tmp_path, name):
    result = cli("stylize", world / "run", tmp_path / name, "-o", tmp_path / "out.png")
    message = assert_clean_error(result, "does not exist")
    assert "\x1b" not in result.output and "\x07" not in result.output  # no terminal control sequences
    assert "markup" not in name or "[bold red]" in message  # shown literally, not interpreted


# -- what must keep working, and the switch for tracebacks --------------------------------

@pytest.mark.parametrize("size", [(1, 1), (3, 2), (2, 3), (1, 37), (37, 1), (5, 5), (7, 4)])
def test_stylize_any_size_from_one_pixel(world, tmp_path, size):
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(tmp_path / "tiny.png")
    result = cli("stylize", world / "run", tmp_path / "tiny.png", "-o", tmp_path / "out.png", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == size


def test_two_inputs_never_write_one_output(world, tmp_path):
    Image.new("RGB", (12, 10), (200, 0, 0)).save(tmp_path / "x.png")
    Image.new("RGB", (12, 10), (0, 0, 200)).save(tmp_path / "x.jpg")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (12, 10), (0, 200, 0)).save(tmp_path / "sub" / "x.png")
    result = cli("stylize", world / "run", tmp_path / "x.png", tmp_path / "x.jpg", tmp_path / "sub" / "x.png",
                 "-o", tmp_path / "out", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_jpg.png", "x_png.png", "x_png_2.png"]


def test_stylize_without_output_writes_beside_the_input(world, tmp_path):
    Image.new("RGB", (12, 10), (200, 0, 0)).save(tmp_path / "photo.jpg")
    result = cli("stylize", world / "run", tmp_path / "photo.jpg", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "photo_run.png").is_file()  # named after the run folder


def test_debug_shows_the_traceback(world, tmp_path):
    args = ["train", world / "fuzz.yaml", "--set", "device=bogus", "--run-dir", tmp_path / "run"]
    plain = cli(*args)
    assert_clean_error(plain, "bogus")
    debug = cli("--debug", *args)
    assert debug.exit_code != 0 and type(debug.exception).__name__ == "DeviceError"
    env = cli(*args, env={"STYLEKIT_DEBUG": "1"})
    assert type(env.exception).__name__ == "DeviceError"


def test_an_unexpected_failure_is_one_paragraph_that_asks_for_a_report(world, tmp_path, monkeypatch):
    import stylekit.checkpoint

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\n\nand a second paragraph")

    monkeypatch.setattr(stylekit.checkpoint, "load_model", broken)
    result = cli("stylize", world / "run", world / "style.jpg", "-o", tmp_path / "o.png")
    out = result.output
    assert result.exit_code == 1 and "Traceback" not in out and "\n\n" not in out.strip()
    assert "unexpected ZeroDivisionError" in out and "--debug" in out
