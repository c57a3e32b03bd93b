"""Recipes: extends, overrides, term selection and errors that name the key path."""

import pytest
import yaml

from stylekit.config import (Recipe, apply_overrides, load_raw, load_recipe, parse_override, select_terms,
                             validate_recipe)
from stylekit.errors import ConfigError
from stylekit.testing import tiny_recipe


@pytest.fixture
def recipe_file(tmp_path):
    raw = tiny_recipe(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_extends_deep_merges_and_resolves_relative_paths(tmp_path, recipe_file):
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("extends: ../tiny.yaml\nname: child\nstyle: {images: [mystyle.jpg]}\n"
                     "losses: {style: {weight: 7}}\n")
    raw = load_raw(child)
    assert raw["name"] == "child"
    assert raw["losses"]["style"] == {"weight": 7, "layers": ["relu1_2", "relu2_2"]}
    assert raw["losses"]["content"]["layer"] == "relu2_2"
    assert raw["style"]["images"] == [str((tmp_path / "sub" / "mystyle.jpg").resolve())]


def test_set_overrides_are_typed():
    assert parse_override("losses.style.layers=[relu2_2,relu3_3]") == (["losses", "style", "layers"],
                                                                       ["relu2_2", "relu3_3"])
    assert parse_override("losses.tv.weight=1e-5")[1] == pytest.approx(1e-5)
    assert parse_override("schedule.iterations=10")[1] == 10
    raw = apply_overrides({"a": {"b": 1}}, ["a.c.d=true"])
    assert raw == {"a": {"b": 1, "c": {"d": True}}}


def test_override_errors_name_key_and_allowed_values(recipe_file):
    with pytest.raises(ConfigError, match=r"model.norm: Input should be 'batch', 'instance' or 'instance_floor' \(got 'group'\)"):
        load_recipe(recipe_file, ["model.norm=group"])
    with pytest.raises(ConfigError, match=r"schedule.iterations: .*greater than or equal to 1"):
        load_recipe(recipe_file, ["schedule.iterations=0"])
    with pytest.raises(ConfigError, match=r"losses.style.weight: .*valid number"):
        load_recipe(recipe_file, ["losses.style.weight=lots"])


def test_unknown_key_lists_allowed_keys(recipe_file):
    with pytest.raises(ConfigError, match=r"schedule.iteratons: unknown key; allowed keys: batch_size, iterations, seed"):
        load_recipe(recipe_file, ["schedule.iteratons=5"])
    with pytest.raises(ConfigError, match=r"losses.style.layrs: unknown key; allowed keys: layer_weights, layers, network, normalize_layers, "
                                          r"reduction, weight"):
        load_recipe(recipe_file, ["losses.style.layrs=[relu1_2]"])


def test_unknown_term_and_backbone_list_known(recipe_file):
    with pytest.raises(ConfigError, match=r"--set losses.dpth.weight: unknown loss term 'dpth'; this recipe's terms: "
                                          r"content, style, tv; registered terms: content, depth, edge, histogram, style, tv"):
        load_recipe(recipe_file, ["losses.dpth.weight=3"])
    with pytest.raises(ConfigError, match=r"backbone.name: unknown backbone 'vgg17'; known backbone names: .*vgg16"):
        load_recipe(recipe_file, ["backbone.name=vgg17"])


def test_without_and_only(recipe_file):
    raw = load_raw(recipe_file)
    assert sorted(select_terms(raw, without=["tv"])["losses"]) == ["content", "style"]
    assert sorted(select_terms(raw, only=["style"])["losses"]) == ["style"]
    with pytest.raises(ConfigError, match=r"unknown loss term 'depth'; this recipe's terms are: content, style, tv"):
        select_terms(raw, without=["depth"])
    recipe = load_recipe(recipe_file, without=["tv"])
    assert "tv" not in recipe.losses


def test_resolved_recipe_has_term_defaults(recipe_file):
    recipe = load_recipe(recipe_file)
    assert recipe.losses["style"]["reduction"] == "sum"
    assert recipe.losses["tv"]["power"] == 2
    assert recipe.backbone.options == {"weights": "random"}


def test_same_term_twice_under_other_keys(tmp_path):
    raw = tiny_recipe(tmp_path, losses={"style_fine": {"term": "style", "layers": ["relu1_2"], "weight": 2}})
    recipe = validate_recipe(raw)
    assert recipe.losses["style_fine"]["term"] == "style"


def test_run_names_say_what_changed():
    from stylekit.runs import run_name

    assert run_name("quickstart", without=["depth"]) == "quickstart-without-depth"
    assert run_name("depth_aware", ["losses.depth.weight=10"]) == "depth_aware-depth.weight=10"
    assert run_name("johnson", ["schedule.seed=2"], preset="candy") == "johnson-candy-seed=2"


def test_run_names_leave_out_what_cannot_change_the_model():
    from stylekit.runs import run_name

    cadence = ["log.every=1", "log.checkpoint_every=50", "log.loggers=[jsonl,tensorboard]", "output_dir=/tmp/x",
               "performance.compile=true", "performance.channels_last=false", "data.workers=8", "device=cuda:1",
               "description=try", "style.license=CC0"]
    assert run_name("quickstart", cadence) == "quickstart"
    assert run_name("quickstart", [*cadence, "losses.depth.weight=10", "precision=bf16", "data.image_size=64"]) \
        == "quickstart-data.image_size=64-depth.weight=10-precision=bf16"
    # one name per configuration: the order of the --set's does not matter, the last of one key wins
    assert run_name("q", ["losses.tv.weight=0", "losses.depth.weight=1"]) == run_name(
        "q", ["losses.depth.weight=5", "losses.depth.weight=1", "losses.tv.weight=0"]) == "q-depth.weight=1-tv.weight=0"


def test_long_run_names_end_in_a_stable_hash():
    from stylekit.runs import NAME_LIMIT, run_name

    base = ["losses.style.layers=[relu1_2,relu2_2,relu3_3,relu4_3]", "losses.content.layer=relu3_3"]
    first = run_name("depth_aware_midas", [*base, "losses.tv.weight=1e-5"])
    second = run_name("depth_aware_midas", [*base, "losses.tv.weight=1e-6"])  # differs only past the cut
    assert len(first) <= NAME_LIMIT and len(second) <= NAME_LIMIT and first != second
    assert first[:-9] == second[:-9] == "depth_aware_midas-content.layer=relu3_3-style.layer"
    assert run_name("depth_aware_midas", [*base, "losses.tv.weight=1e-5"]) == first  # stable: same run, same name


def test_keys_left_out_of_names_exist_in_the_recipe():
    """A renamed recipe key must not silently start appearing in run names."""
    from pydantic import BaseModel

    from stylekit.runs import NAME_IGNORED_KEYS

    for key in NAME_IGNORED_KEYS:
        model = Recipe
        for part in key.split("."):
            assert isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields, key
            model = model.model_fields[part].annotation


def test_missing_required_section(tmp_path):
    raw = tiny_recipe(tmp_path)
    del raw["style"]
    with pytest.raises(ConfigError, match="style: required key is missing"):
        validate_recipe(raw)


def test_presets_apply_named_overrides(tmp_path):
    raw = tiny_recipe(tmp_path, presets={"bold": {"losses.style.weight": 50.0, "style.size": 40,
                                                  "style.images": ["style.jpg"]}})
    path = tmp_path / "with_presets.yaml"
    path.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(path, preset="bold")
    assert recipe.losses["style"]["weight"] == 50.0 and recipe.style.size == 40 and recipe.preset == "bold"
    assert recipe.style.images == [str((tmp_path / "style.jpg").resolve())]  # preset paths resolve like the recipe's
    assert load_recipe(path, ["losses.style.weight=2"], preset="bold").losses["style"]["weight"] == 2  # --set wins
    with pytest.raises(ConfigError, match="unknown preset 'subtle'; this recipe's presets are: bold"):
        load_recipe(path, preset="subtle")


def test_every_key_value_option_reads_values_alike():
    """--set, --option and --depth-option share one reader: 1e-5 is a number, an empty value is None."""
    from stylekit.yamlio import options_from_texts

    assert options_from_texts(["weights=/a/b.pt", "input_size=128", "eps=1e-5", "x="], "--option") == \
        {"weights": "/a/b.pt", "input_size": 128, "eps": 1e-5, "x": None}
    assert parse_override("losses.tv.weight=1e-5") == (["losses", "tv", "weight"], 1e-5)
    with pytest.raises(ConfigError, match="--depth-option 'size'"):
        options_from_texts(["size"], "--depth-option")


def test_learning_rate_schedule_is_a_function_of_the_step():
    from stylekit.config import OptimConfig

    constant = OptimConfig(lr=1e-3)
    assert [constant.rate(s, 100) for s in (0, 50, 99)] == [1e-3] * 3
    cosine = OptimConfig(lr=2e-3, decay="cosine", final_lr=0.1, warmup=10)
    rates = [cosine.rate(s, 110) for s in range(110)]
    assert rates[0] == pytest.approx(2e-4) and rates[9] == pytest.approx(2e-3)  # linear warm-up
    assert rates[10] == pytest.approx(2e-3) and rates[-1] == pytest.approx(2e-4, rel=0.01)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then only down
    assert rates[60] == pytest.approx(1.1e-3)  # halfway: the mean of peak and floor
