"""Pure lifecycle logic: no SQL, no sessions, no I/O; time comes in as an argument."""
