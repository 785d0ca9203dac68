"""Names made from a subject: one function for a new lesson's file and a broadcast."""

from __future__ import annotations

from drip.content.names import broadcast_name, name_for


def test_a_broadcast_is_named_as_a_lesson_is_with_its_own_fallback_and_length() -> None:
    assert broadcast_name("Café: what's new in Übung 2") == "cafe-what-s-new-in-ubung-2"
    assert broadcast_name("🎉🎉") == "broadcast"
    assert name_for("🎉🎉") == "lesson"
    long = broadcast_name("word " * 30)
    assert len(long) <= 60 and not long.endswith("-") and long.startswith("word-word")
