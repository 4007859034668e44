"""The examples in examples/ run as a user runs them, against a real
3-node cluster, as separate agent processes."""

import os
import subprocess
import sys
import unittest

from cluster import Cluster

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "..", "examples")


class Examples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(3)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def run_example(self, name):
        env = dict(os.environ, MEMCOORD_ENDPOINTS=self.cluster.endpoints)
        p = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)],
                           env=env, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        print("\n" + p.stdout, file=sys.stderr)
        return p.stdout

    def test_chain_researcher_coder_tester(self):
        out = self.run_example("chain.py")
        self.assertIn("report: tested", out)
        for role in ("researcher", "coder", "tester"):
            self.assertIn("agents/" + role, out)

    def test_fanout_fanin(self):
        out = self.run_example("fanout.py")
        self.assertIn("12 tasks over 3 workers", out)
        self.assertIn("sum of squares: 506", out)


if __name__ == "__main__":
    unittest.main()
