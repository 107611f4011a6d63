"""What differs per operating system: file-in-use checks, CPU priority, autostart, desktop entries, locks."""
