#!/usr/bin/env python3
"""A standard TUF client (python-tuf's ngclient, https://pypi.org/project/tuf/)
refreshing an updraft repository from a pinned root and downloading one
verified target. Nothing of updraft's code is involved: python-tuf checks
every signature, threshold, version and expiry, and the target's length and
hashes. The only addition is the Authorization header each request carries
(updraft's repositories are readable with a device token or an API key).

usage: tuf_client.py METADATA_URL TARGETS_URL ROOT_JSON TARGET_PATH OUT_DIR
  with UPDRAFT_TUF_AUTH="TargetToken <device token>" (or "Bearer <api key>")
"""
import os
import sys
import tempfile

import urllib3
from tuf.ngclient import Updater, Urllib3Fetcher


class AuthFetcher(Urllib3Fetcher):
    """python-tuf's own fetcher, with an Authorization header on every request."""

    def __init__(self, auth):
        super().__init__()
        self._http = urllib3.PoolManager(headers={"Authorization": auth})

    def _fetch(self, url):
        response = self._http.request("GET", url, preload_content=False, timeout=urllib3.Timeout(30))
        if response.status >= 400:
            response.close()
            from tuf.api import exceptions
            raise exceptions.DownloadHTTPError(f"HTTP {response.status}", response.status)
        return self._chunks(response)


def main():
    metadata_url, targets_url, root, target, out = sys.argv[1:6]
    cache = tempfile.mkdtemp(prefix="tuf-metadata-")
    with open(root, "rb") as f:
        pinned = f.read()
    updater = Updater(
        bootstrap=pinned,
        metadata_dir=cache,
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        target_dir=out,
        fetcher=AuthFetcher(os.environ["UPDRAFT_TUF_AUTH"]),
    )
    updater.refresh()
    info = updater.get_targetinfo(target)
    if info is None:
        print(f"target {target} is not in the signed targets", file=sys.stderr)
        sys.exit(2)
    path = updater.download_target(info)
    print(f"verified {target}: {info.length} bytes, custom {info.custom} -> {path}")


if __name__ == "__main__":
    main()
