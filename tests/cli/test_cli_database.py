"""The admin commands on a PostgreSQL database (several hubs share it): keys and call flows made
with --database are the ones every hub on it reads; the password comes from a file."""

from __future__ import annotations

import json

from .test_cli import run


def test_keys_and_call_flows_on_a_shared_database(postgres, tmp_path, capsys):
    password = tmp_path / "db-password"
    password.write_text(postgres.password + "\n")
    database = ["--database", postgres.url(postgres.new_database()), "--database-password-file", str(password)]
    flow_file = tmp_path / "ring.json"
    flow_file.write_text(
        json.dumps({"id": "ring_desk", "steps": [{"action": "transfer", "options": {"destination": "client:desk"}}]})
    )

    code, out, err = run(
        capsys, "keys", "create", "--name", "door", "--identity", "door", "--outgoing", "ring_desk", *database
    )
    assert code == 0, err
    created = json.loads(out)
    code, out, err = run(capsys, "callflows", "create", "--file", str(flow_file), *database)
    assert (code, out.strip()) == (0, "ring_desk"), err

    code, out, _ = run(capsys, "keys", "list", *database)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [created["id"]]
    code, out, _ = run(capsys, "callflows", "list", *database)
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["ring_desk"]
    code, out, _ = run(capsys, "keys", "list", "--data-dir", str(tmp_path))  # SQLite there: another database
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "keys", "revoke", created["id"], *database)
    assert code == 0 and json.loads(out) == {"id": created["id"], "revoked": True}


def test_a_wrong_database_password_is_one_clear_line_without_it(postgres, tmp_path, capsys):
    password = tmp_path / "db-password"
    password.write_text("not-the-password-42\n")
    database = ["--database", postgres.url(postgres.new_database()), "--database-password-file", str(password)]
    code, _, err = run(capsys, "keys", "list", *database)
    assert (
        code == 2
        and "--database: cannot connect:" in err
        and 'password authentication failed for user "intercom"' in err
    )
    assert "not-the-password-42" not in err


def test_a_hub_whose_database_refuses_it_says_why_in_one_line(postgres, tmp_path, capsys):
    password = tmp_path / "db-password"
    password.write_text("not-the-password-42\n")
    url = postgres.url(postgres.new_database())
    code, _, err = run(
        capsys, "hub", "--data-dir", str(tmp_path), "--database", url, "--database-password-file", str(password)
    )
    assert code == 2 and "--database: cannot connect:" in err and "not-the-password-42" not in err
