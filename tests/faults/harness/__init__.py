"""The fault harness: apimon's real processes on loopback (procs, stack), the data
they serve (world), a load generator with exact counts (load) and readers of the
ground truth (truth). docs/faults.md tells how to use and extend it."""
