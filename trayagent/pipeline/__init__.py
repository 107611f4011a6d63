"""The upload pipeline: scan sources, hash, copy (through storage), verify, register, write the manifest."""
