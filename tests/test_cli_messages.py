"""Messages a new user meets first: the top-level help is whole sentences, and bad paths or
files are one line that says what is wrong."""

from __future__ import annotations

from conformance.cli import main


def test_top_level_help_lists_every_command_and_no_command_is_a_usage_error(capsys):
    import pkgutil

    import conformance.commands

    assert main([]) == 2
    text = capsys.readouterr().out
    for info in pkgutil.iter_modules(conformance.commands.__path__):
        assert info.name in text, f"'conformance --help' does not list {info.name}"
    assert "conformance COMMAND --help" in text and "``" not in text


def test_replay_of_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["replay", str(missing)]) == 2
    assert capsys.readouterr().err == f"conformance replay: {missing} does not exist\n"


def test_weights_that_are_not_a_checkpoint_say_what_they_are(tmp_path, capsys):
    notes = tmp_path / "notes.pth"
    notes.write_text("hello world, not weights")
    assert main(["superres", "--weights", str(notes), "--output", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.save writes a zip archive, this file starts with b'hello wo'" in err
