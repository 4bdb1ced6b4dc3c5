"""Settings: defaults < BACKPROPAGATE_* environment < flags, and bad values name the variable."""

import pytest
from backpropagate.config import load_settings
from backpropagate.contract.errors import BackpropError

from tests.conftest import run_cli


def test_defaults_apply_when_nothing_is_set():
    settings = load_settings(environ={})
    assert settings.training.learning_rate == 2e-4
    assert settings.lora.r == 16 and settings.log_level == "INFO" and settings.log_json is False


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"BACKPROPAGATE_TRAINING__LEARNING_RATE": "1e-3", "BACKPROPAGATE_LORA__R": "8",
           "BACKPROPAGATE_MODEL__NAME": "org/base", "BACKPROPAGATE_LOG_LEVEL": "DEBUG",
           "BACKPROPAGATE_LOG_JSON": "true"}
    from_env = load_settings(environ=env)
    assert (from_env.training.learning_rate, from_env.lora.r, from_env.model.name) == (1e-3, 8, "org/base")
    assert from_env.log_level == "DEBUG" and from_env.log_json is True
    flagged = load_settings(environ=env, overrides={"training.learning_rate": 5e-4, "lora.r": 4})
    assert (flagged.training.learning_rate, flagged.lora.r) == (5e-4, 4)


def test_a_preset_sets_its_values_and_explicit_flags_win_over_it():
    fast = load_settings(environ={}, overrides={"lora.preset": "fast"})
    assert (fast.lora.r, fast.lora.alpha, fast.lora.targets) == (16, 16, ("q_proj", "v_proj"))
    quality = load_settings(environ={}, overrides={"lora.preset": "quality", "lora.r": 64})
    assert (quality.lora.r, quality.lora.targets) == (64, ("all-linear",))


def test_a_list_setting_reads_comma_separated_text():
    settings = load_settings(environ={"BACKPROPAGATE_LORA__TARGETS": "q_proj, k_proj"})
    assert settings.lora.targets == ("q_proj", "k_proj")


@pytest.mark.parametrize("variable, value, expected", [
    ("BACKPROPAGATE_LORA__R", "x",
     "[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_LORA__R='x' is not valid: not an integer\n"
     "  fix: set BACKPROPAGATE_LORA__R to an integer from 1 to 4096, or unset it"),
    ("BACKPROPAGATE_TRAINING__LEARNING_RATE", "-1",
     "[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_TRAINING__LEARNING_RATE='-1' is not valid: "
     "must be greater than 0\n  fix: set BACKPROPAGATE_TRAINING__LEARNING_RATE to a number greater than 0, "
     "such as 2e-4, or unset it"),
    ("BACKPROPAGATE_LOG_LEVEL", "LOUD",
     "[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_LOG_LEVEL='LOUD' is not valid: "
     "not an accepted choice\n  fix: set BACKPROPAGATE_LOG_LEVEL to one of DEBUG, INFO, WARNING, ERROR, "
     "or unset it"),
    ("BACKPROPAGATE_LOG_JSON", "maybe",
     "[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_LOG_JSON='maybe' is not valid: not a boolean\n"
     "  fix: set BACKPROPAGATE_LOG_JSON to true or false, or unset it"),
])
def test_a_bad_environment_value_names_the_variable_and_what_is_allowed(variable, value, expected):
    with pytest.raises(BackpropError) as caught:
        load_settings(environ={variable: value})
    assert caught.value.render() == expected


def test_an_unknown_backpropagate_variable_is_refused():
    with pytest.raises(BackpropError) as caught:
        load_settings(environ={"BACKPROPAGATE_LORA__RANK": "8"})
    assert caught.value.code == "CONFIG_ENV_UNKNOWN"
    assert caught.value.message == "environment variable BACKPROPAGATE_LORA__RANK is not a backpropagate setting"
    # The fix lists every real setting, so the near miss is in it.
    assert caught.value.fix.startswith("unset it; the settings are BACKPROPAGATE_CAMPAIGN__REPLAY_FRACTION, "
                                      "BACKPROPAGATE_DOCKER__BASE_IMAGE, ")
    assert ", BACKPROPAGATE_LORA__R, " in caught.value.fix
    assert caught.value.exit_code == 2


def _text_data(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    return data


def test_the_cli_exits_with_the_coded_error_for_a_bad_environment_value(tmp_path):
    data = _text_data(tmp_path)
    result = run_cli("train", "--data", str(data), "--model", "org/m", "--output", str(tmp_path),
                     env={"BACKPROPAGATE_LORA__R": "zero"})
    assert result.returncode == 2
    assert result.stderr.startswith("[CONFIG_ENV_INVALID]: environment variable BACKPROPAGATE_LORA__R='zero'")
    assert "Traceback" not in result.stderr


def test_a_bad_flag_value_names_the_flag(tmp_path):
    data = _text_data(tmp_path)
    result = run_cli("train", "--data", str(data), "--model", "org/m", "--lora-dropout", "1.5",
                     "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "[CONFIG_VALUE_INVALID]: --lora-dropout=1.5 is not valid: must be in [0, 1)"


def test_a_bad_choice_flag_names_the_flag_and_the_choices(tmp_path):
    data = _text_data(tmp_path)
    result = run_cli("train", "--data", str(data), "--model", "org/m", "--device", "tpu",
                     "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "[CONFIG_VALUE_INVALID]: --device='tpu' is not valid: 'tpu' is not one of auto, cpu, cuda",
        "  fix: use one of auto, cpu, cuda",
    ]
