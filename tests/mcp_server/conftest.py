"""Fixtures for the MCP tests: each user's agent."""

from __future__ import annotations

import pytest

from tests.conftest import User
from tests.mcp_client import Agent


@pytest.fixture
def alice_agent(mcp_base: str, alice: User) -> Agent:
    return Agent(mcp_base, alice)


@pytest.fixture
def bob_agent(mcp_base: str, bob: User) -> Agent:
    return Agent(mcp_base, bob)
