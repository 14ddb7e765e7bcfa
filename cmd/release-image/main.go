// Command release-image writes the satellite's container image, as an OCI
// image layout in a tar archive, from a skypipe binary a release built:
// the image `skypipe setup fly` runs for that release (provision/fly), and
// what `docker run` or any OCI runtime can run. goreleaser runs it after
// each build (.goreleaser.yaml); for builds other than linux/amd64 it
// writes nothing.
//
//	go run ./cmd/release-image -binary dist/.../skypipe -os linux -arch amd64 \
//	    -version 1.2.3 -out dist
//
// It writes OUT/skypipe_VERSION_image_linux_amd64.tar and prints its path
// and the image's digest; `skopeo copy oci-archive:FILE
// docker://ghcr.io/skypipe/skypipe:VERSION` publishes it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skypipe/skypipe/provision/fly"
)

func main() {
	binary := flag.String("binary", "", "the skypipe binary (a static linux/amd64 build)")
	goos := flag.String("os", "linux", "the binary's GOOS")
	goarch := flag.String("arch", "amd64", "the binary's GOARCH")
	version := flag.String("version", "", "the release's version, the image's tag")
	out := flag.String("out", "dist", "directory to write the image to")
	flag.Parse()
	if *binary == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "usage: release-image -binary FILE -version V [-os linux -arch amd64] [-out DIR]")
		os.Exit(2)
	}
	if *goos != "linux" || *goarch != "amd64" {
		return // the satellite's image is linux/amd64, what a Fly machine runs
	}
	if err := write(*binary, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "release-image:", err)
		os.Exit(1)
	}
}

func write(binary, version, dir string) error {
	bin, err := fly.ReadBinary(binary)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, fmt.Sprintf("skypipe_%s_image_linux_amd64.tar", version))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	digest, err := fly.Image{Binary: bin, Cmd: fly.ServeArgs()}.WriteLayout(f, version)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	fmt.Printf("%s %s (%s)\n", path, digest, fly.ReleasedImage(version))
	return nil
}
