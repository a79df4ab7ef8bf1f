"""Prompt optimizer for the agent training loop: reads scored rollouts, proposes better prompts."""

__version__ = "0.3.0"
