"""Planning: desired state (the YAML) x actual state (the backend) x today -> an ordered, explained plan."""
