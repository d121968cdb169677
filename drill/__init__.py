"""The failover drill (`make drill`): the tutorial's own test, run for real and measured."""
