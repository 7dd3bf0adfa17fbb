package llb

import (
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
)

// unsupported are the LLB capabilities Kiln reports as disabled, with why.
// Frontends check capabilities before they use a feature (BuildKit's
// Dockerfile frontend, for example, falls back when one is missing), so
// reporting them keeps such frontends on what Convert accepts.
var unsupported = map[apicaps.CapID]string{
	pb.CapSourceImageLayerLimit:             "image layer limits",
	pb.CapSourceImageBlob:                   "image blob sources",
	pb.CapSourceOCILayout:                   "oci-layout sources",
	pb.CapSourceGitChecksum:                 "git commit checksums",
	pb.CapSourceGitSkipSubmodules:           "skipping git submodules",
	pb.CapSourceGitSignatureVerify:          "git signature checks",
	pb.CapSourceGitMTime:                    "git commit mtimes",
	pb.CapSourceGitFetchByCommit:            "git fetch by commit",
	pb.CapSourceGitBundle:                   "git bundles",
	pb.CapSourceGitCheckoutBundle:           "git bundle checkouts",
	pb.CapSourceHTTPAuth:                    "http auth header secrets",
	pb.CapSourceHTTPHeader:                  "http request headers",
	pb.CapSourceHTTPSignatureVerify:         "http signature checks",
	pb.CapExecMetaCgroupParent:              "cgroup parents",
	pb.CapExecMetaUlimit:                    "ulimits",
	pb.CapExecMetaCDI:                       "CDI devices",
	pb.CapExecMetaLinuxResources:            "linux resource limits",
	pb.CapExecMetaSecurityDeviceWhitelistV1: "device allow lists",
	pb.CapRemoteCacheGHA:                    "the gha cache",
	pb.CapRemoteCacheS3:                     "the s3 cache",
	pb.CapRemoteCacheAzBlob:                 "the azblob cache",
	pb.CapPassthroughOp:                     "passthrough ops",
	pb.CapAttestations:                      "attestations",
	pb.CapSourcePolicy:                      "source policies",
	pb.CapSourcePolicySession:               "source policies",
}

// Caps returns BuildKit's LLB capability list as Kiln supports it: every
// capability BuildKit v0.34 knows, with those Convert rejects disabled. A
// gateway frontend's Ping and BuildKit's ListWorkers/Info answers carry it.
func Caps() []*apicapspb.APICap {
	all := pb.Caps.All()
	for _, c := range all {
		if why, ok := unsupported[apicaps.CapID(c.ID)]; ok {
			c.Enabled = false
			c.DisabledReason = "unsupported"
			c.DisabledReasonMsg = why + " are not supported by Kiln"
		}
	}
	return all
}
