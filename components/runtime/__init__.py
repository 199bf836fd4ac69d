"""What sandboxes run in: Kata Containers (kata-deploy, RuntimeClasses), gVisor, and the agent-sandbox controller
for warm pools."""
