"""Messages a new user meets first: the top-level help is whole sentences, and bad paths or
files are one line that says what is wrong."""

from __future__ import annotations

from conformance.cli import build_parser, main


def test_top_level_help_is_whole_sentences():
    text = build_parser().format_help()
    description = build_parser().description
    assert description.endswith(".") and "``" not in description and "<name>" not in description
    assert "conformance COMMAND --help" in text


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
