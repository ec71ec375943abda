"""The notifier: turns the ends of runs on the public run-events topic into signed webhook deliveries."""
