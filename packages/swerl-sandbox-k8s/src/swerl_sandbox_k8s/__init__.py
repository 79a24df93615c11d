"""swerl sandbox backend: Harbor on a Kubernetes cluster."""
