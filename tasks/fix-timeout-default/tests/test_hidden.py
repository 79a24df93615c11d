"""The verifier's tests: more cases than the repository shows the agent."""

import unittest

import config


class TestDefaults(unittest.TestCase):
    def test_default_timeout(self):
        self.assertEqual(config.load("")["timeout"], 30)

    def test_default_timeout_with_other_keys(self):
        self.assertEqual(config.load("retries = 5\nverbose = true")["timeout"], 30)

    def test_given_timeout_wins(self):
        self.assertEqual(config.load("timeout = 7  # short")["timeout"], 7)

    def test_other_defaults_untouched(self):
        settings = config.load("")
        self.assertEqual((settings["retries"], settings["verbose"]), (3, False))

    def test_defaults_not_mutated(self):
        config.load("timeout = 1")
        self.assertEqual(config.load("")["timeout"], 30)


if __name__ == "__main__":
    unittest.main()
