"""``outdial call``: one call through a configured account, the provider's answer normalised."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from typer.testing import CliRunner

from outdial.cli import app
from outdial.settings import Settings, reset_settings

URL = "http://callkaro.test/call/outbound"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTDIAL_ACCOUNTS_FILE", str(settings.accounts_file))
    reset_settings()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["call", *args])
    return result.exit_code, result.stdout, result.stderr


@respx.mock
def test_accepted_call_prints_the_call_id(cli_env: None) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json={"status": "success", "call_sid": "abc"}))
    code, out, _ = run("--account", "ck", "--to", "+12125551234", "--var", "name=Asha", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["accepted"] is True and result["provider_call_id"] == "abc" and result["http_status"] == 200
    assert json.loads(route.calls[0].request.content)["metadata"] == {"name": "Asha"}


@respx.mock
def test_bad_key_is_reported_with_status_and_message(cli_env: None) -> None:
    respx.post(URL).mock(
        return_value=httpx.Response(403, json={"status": "error", "message": "Invalid or missing API key"})
    )
    code, out, _ = run("--account", "ck", "--to", "+12125551234", "--json")
    result = json.loads(out)
    assert code == 1
    assert result["verdict"] == "rejected" and result["http_status"] == 403
    assert result["message"] == "Invalid or missing API key"


def test_unknown_account_and_bad_number_are_clear_errors(cli_env: None) -> None:
    code, _, err = run("--account", "nope", "--to", "+12125551234")
    assert code == 2 and "no account named 'nope'" in err
    code, _, err = run("--account", "ck", "--to", "12345")
    assert code == 2 and "--to" in err


def test_missing_credential_names_the_variable(cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTDIAL_TEST_CK_KEY")
    code, _, err = run("--account", "ck", "--to", "+12125551234")
    assert code == 2 and "OUTDIAL_TEST_CK_KEY" in err
