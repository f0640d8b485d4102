"""One text turn per test, each with its own bundle (no path in the marker: one bundle per
test and parametrize id under rtrec_bundles/test_turns/). The outer suite changes the
agent's behaviour through USERPROJECT_* variables, as a developer would change the code."""

from __future__ import annotations

import os

import pytest
from agent import ask


@pytest.mark.parametrize("question", ["What time is it?", "Where am I?"], ids=["time", "place"])
async def test_question(client, question):
    """The agent asks one question (and, with USERPROJECT_FOLLOW_UP, a follow-up the
    recording does not have); the reply echoes it."""
    question = os.environ.get("USERPROJECT_QUESTION", question)
    questions = [question]
    if os.environ.get("USERPROJECT_FOLLOW_UP"):
        questions.append(os.environ["USERPROJECT_FOLLOW_UP"])
    replies = await ask(client, questions)
    assert replies[0].startswith(f'You said: "{question}"')
