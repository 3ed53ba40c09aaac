"""The areamesh command line and the demo mesh; wires registry, connector and mesh."""
