"""Settings: precedence (defaults < stop.toml < environment < flags) and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stop_tui.config import Settings, find_config_file, load_settings, make_backend
from stop_tui.errors import UserError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(
    tmp_path: Path,
    overrides: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    file: Path | None = None,
) -> Settings:
    return load_settings(overrides or {}, file, environ=env or {}, cwd=tmp_path)


def test_defaults_are_the_papers_budgets_and_the_demo_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user config file
    s = load(tmp_path)
    assert s.model == "demo"
    assert (s.max_responses_per_call, s.lm_budget) == (6, 4)
    assert (s.utility_budget, s.meta_utility_budget, s.meta_utility_tests) == (25, 25, 5)
    assert s.generations == 6 and s.task == "parity_noise"
    assert s.workspace == Path("stop-runs")
    assert s.max_calls is None and s.max_cost is None


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "stop.toml",
        'model = "from-file"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "timeout = 11\nmax_concurrency = 2\nlm_budget = 3\n",
    )
    env = {"STOP_TUI_TIMEOUT": "22", "STOP_TUI_MAX_CONCURRENCY": "5", "OPENAI_API_KEY": "sk-env"}
    s = load(tmp_path, {"max_concurrency": 9, "timeout": None}, env, cfg)
    assert s.model == "from-file"  # only in the file
    assert s.lm_budget == 3
    assert s.timeout == 22.0  # env beats file; a None flag does not override
    assert s.max_concurrency == 9  # flag beats env
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-env"


def test_stop_tui_env_beats_standard_env(tmp_path: Path) -> None:
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "STOP_TUI_BASE_URL": "http://127.0.0.1:2/v1",
        "OPENAI_ORG_ID": "org-1",
        "STOP_TUI_MODEL": "m",
    }
    s = load(tmp_path, env=env)
    assert s.base_url == "http://127.0.0.1:2/v1"
    assert s.organization == "org-1"


def test_working_directory_file_is_found_before_the_user_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "stop-tui").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    user = write(xdg / "stop-tui" / "stop.toml", "generations = 2\n")
    cwd = tmp_path / "project"
    cwd.mkdir()
    assert find_config_file(cwd) == user
    assert load(cwd).generations == 2
    write(cwd / "stop.toml", "generations = 3\n")
    assert find_config_file(cwd) == cwd / "stop.toml"
    assert load(cwd).generations == 3


def test_prices_table_from_file_and_env(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "stop.toml",
        'model = "local-llama"\nbase_url = "http://127.0.0.1:8080/v1"\nmax_cost = 2.5\n'
        '[prices]\n"local-llama" = { prompt = 0.1, completion = 0.2 }\n',
    )
    s = load(tmp_path, file=cfg)
    assert s.prices == {"local-llama": (0.1, 0.2)}
    s = load(tmp_path, env={"STOP_TUI_PRICES": '{"x": [1, 2]}', "STOP_TUI_MODEL": "demo"})
    assert s.prices == {"x": (1.0, 2.0)}


def one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    line = exc.value.line()
    assert "\n" not in line
    return line


def test_unknown_key_in_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "stop.toml", 'modle = "gpt-4o"\n')
    with pytest.raises(UserError) as info:
        load(tmp_path, file=cfg)
    line = one_line(info)
    assert "'modle'" in line and str(cfg) in line and "did you mean 'model'" in line


def test_unknown_env_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, env={"STOP_TUI_MAX_COSTS": "3"})
    line = one_line(info)
    assert "STOP_TUI_MAX_COSTS" in line and "STOP_TUI_MAX_COST" in line.split("mean")[1]


def test_unknown_flag_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, {"budgett": 3})
    assert "'budgett'" in one_line(info) and "command line" in one_line(info)


def test_wrong_type_names_key_value_and_source(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, env={"STOP_TUI_TIMEOUT": "soon"})
    line = one_line(info)
    assert "'timeout'" in line and "STOP_TUI_TIMEOUT" in line and "'soon'" in line
    cfg = write(tmp_path / "stop.toml", 'lm_budget = "many"\n')
    with pytest.raises(UserError) as info:
        load(tmp_path, file=cfg)
    assert "'lm_budget'" in one_line(info) and str(cfg) in one_line(info)
    with pytest.raises(UserError) as info:
        load(tmp_path, {"max_concurrency": 0})
    assert "'max_concurrency'" in one_line(info) and "command line" in one_line(info)


def test_invalid_approval_policy(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, {"approval": "yolo"})
    assert "every-candidate" in one_line(info)


def test_missing_model_with_an_endpoint(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, env={"OPENAI_API_KEY": "sk-abcdef"})
    line = one_line(info)
    assert "no model" in line and "OPENAI_API_KEY" in line and "--model" in line
    assert "sk-abcdef" not in line


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "stop.toml", "model = \n")
    with pytest.raises(UserError, match="not valid TOML"):
        load(tmp_path, file=cfg)
    with pytest.raises(UserError, match="does not exist"):
        load(tmp_path, file=tmp_path / "missing.toml")


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "stop.toml"
    cfg.write_bytes(b'model = "\xff\xfe"\n')
    with pytest.raises(UserError, match=r"cannot read config file .*stop\.toml: 'utf-8' codec"):
        load(tmp_path, file=cfg)
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(UserError, match=r"cannot read config file .*dir\.toml: Is a directory"):
        load(tmp_path, file=directory)


def test_max_cost_needs_a_known_price(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(tmp_path, {"model": "mystery", "base_url": "http://127.0.0.1:1/v1", "max_cost": 1})
    assert "[prices]" in one_line(info) and "'mystery'" in one_line(info)
    s = load(tmp_path, {"model": "gpt-4o-mini-2024-07-18", "api_key": "k", "max_cost": 1})
    assert s.max_cost == 1.0


def test_azure_needs_an_api_version(tmp_path: Path) -> None:
    env = {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "STOP_TUI_MODEL": "dep"}
    with pytest.raises(UserError, match="azure_api_version"):
        load(tmp_path, env=env)
    s = load(tmp_path, env={**env, "OPENAI_API_VERSION": "2024-10-21"})
    assert s.azure_api_version == "2024-10-21"


def test_key_is_never_shown(tmp_path: Path) -> None:
    s = load(tmp_path, {"model": "m", "api_key": "sk-very-secret"})
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in str(s.redacted())
    with pytest.raises(UserError) as info:
        load(tmp_path, {"model": "m", "api_key": 12345})
    assert "12345" not in one_line(info)


async def test_make_backend_openai(tmp_path: Path) -> None:
    s = load(tmp_path, {"model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key": "sk-zz99"})
    backend = make_backend(s)
    try:
        assert backend.name == "openai:m"
        assert "sk-zz99" not in repr(backend)
    finally:
        await backend.aclose()


def test_make_backend_demo(tmp_path: Path) -> None:
    s = load(tmp_path, {"model": "demo"})
    try:
        import stop_tui.lm.demo  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="demo backend is not available"):
            make_backend(s)
        return
    assert make_backend(s).name  # the demo helper's backend, once merged


async def test_run_backend_records_resumes_and_replays(tmp_path: Path) -> None:
    from stop_tui.config import make_run_backend
    from stop_tui.lm.budget import LanguageModel, RunBudget
    from stop_tui.lm.types import ReplayDivergence
    from tests.support.openai_server import OpenAIServer

    transcript = tmp_path / "run" / "lm.jsonl"
    with OpenAIServer() as server:
        s = load(tmp_path, {"model": "test-model", "base_url": server.base_url, "max_calls": 10})
        backend = make_run_backend(s, transcript)
        model = LanguageModel(backend, model=s.model, run_budget=RunBudget.from_settings(s))
        first = await model.prompt("e", "one")
        await backend.aclose()
        backend = make_run_backend(s, transcript, resume=True)
        model = LanguageModel(backend, model=s.model)
        assert await model.prompt("e", "one") == first
        second = await model.prompt("e", "two")
        await backend.aclose()
        assert server.count() == 2
    replay = make_run_backend(s, tmp_path / "unused.jsonl", replay_from=transcript)
    model = LanguageModel(replay, model=s.model)
    assert [await model.prompt("e", "one"), await model.prompt("e", "two")] == [first, second]
    with pytest.raises(ReplayDivergence):
        await model.prompt("e", "three")
    assert not (tmp_path / "unused.jsonl").exists()


def test_keymap_from_the_file_is_checked_and_normalised(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "stop.toml",
        '[keymap]\n"approval.approve" = ["y", "a"]\n"run.pause" = "ctrl+x"\n"app.help" = "?"\n',
    )
    s = load(tmp_path, file=cfg)
    assert s.keymap == {"approval.approve": "y,a", "run.pause": "ctrl+x", "app.help": "?"}
    env = {"STOP_TUI_KEYMAP": '{"hist.best": "B"}'}
    assert load(tmp_path, env=env).keymap == {"hist.best": "B"}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            'approve = "y"',
            "unknown binding id 'approve' in [keymap]: did you mean 'approval.approve'?",
        ),
        ('"run.pause" = "esc"', "'esc' is not a key (did you mean 'escape'?)"),
        ('"run.pause" = "hyperx+y"', "'hyperx' in 'hyperx+y' is not a modifier"),
        ('"run.pause" = "ctrl+p"', "'ctrl+p' is kept for the command palette"),
        ('"run.pause" = "q"', "'q' is already the key of app.quit on the run screen"),
        ('"approval.approve" = "r"', "'r' is already the key of approval.reject"),
        ('"run.pause" = []', "run.pause must be a key or a list of keys"),
    ],
)
def test_a_bad_keymap_names_the_file_and_the_fix(tmp_path: Path, entry: str, expected: str) -> None:
    cfg = write(tmp_path / "stop.toml", f"[keymap]\n{entry}\n")
    with pytest.raises(UserError) as exc:
        load(tmp_path, file=cfg)
    line = exc.value.line()
    assert "\n" not in line and str(cfg) in line and expected in line, line
