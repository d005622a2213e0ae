"""The `sdfb` command line: above the flows (it starts them), never
imported by the library, flows or tasks."""
