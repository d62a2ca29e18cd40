"""The agent service: chat UI and API, acting for the signed-in user through AgentCore Identity."""
