"""Pure domain shared by the services and `tthc replay`: no I/O besides the replay command."""
