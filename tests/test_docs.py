"""The README's documented lists stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from ibkr_sdk import QuestionType

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_question_type_is_in_the_readme_table() -> None:
    for q in QuestionType:
        row = f"| `{q.name}` | {q.message_id or '—'} | {q.description} | {q.phrase or '—'} |"
        assert row in README, f"README's Order questions table lacks or misstates {q.name}"
