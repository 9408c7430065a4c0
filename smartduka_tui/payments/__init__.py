"""Payment domain: the attempt state machine, payment service, reconciler, limits and monitor."""
