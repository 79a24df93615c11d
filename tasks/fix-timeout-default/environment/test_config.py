import unittest

import config


class TestConfig(unittest.TestCase):
    def test_values_win(self):
        self.assertEqual(config.load("retries = 5")["retries"], 5)

    def test_default_timeout(self):
        self.assertEqual(config.load("retries = 5")["timeout"], 30)


if __name__ == "__main__":
    unittest.main()
