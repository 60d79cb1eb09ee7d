"""The eHerkenning domain: levels, the service catalogue and the backend's rules R1..R20."""
