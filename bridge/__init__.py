"""mless lab: the poller, execution environments, local cloud and CLI."""
