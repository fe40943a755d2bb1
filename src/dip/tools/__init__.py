"""Tools around the broker: the CLI, the participant client, the simulator, the demo, samples,
test seams and the importers of official schemas and registry files."""
