"""The syncws pytest plugin: fixtures for tests of programs that use syncws."""
