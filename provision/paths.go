package provision

import (
	"errors"
	"os"
	"path/filepath"
)

// Paths are where the local satellite keeps its files.
type Paths struct {
	Config string // $XDG_CONFIG_HOME/skypipe
	Data   string // $XDG_DATA_HOME/skypipe
}

// DefaultPaths follows the XDG base directory rules.
func DefaultPaths() (Paths, error) {
	home, _ := os.UserHomeDir()
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home == "" {
			return Paths{}, errors.New("neither XDG_CONFIG_HOME nor HOME is set")
		}
		cfg = filepath.Join(home, ".config")
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		if home == "" {
			return Paths{}, errors.New("neither XDG_DATA_HOME nor HOME is set")
		}
		data = filepath.Join(home, ".local", "share")
	}
	return Paths{Config: filepath.Join(cfg, "skypipe"), Data: filepath.Join(data, "skypipe")}, nil
}

func (p Paths) tokenFile() string    { return filepath.Join(p.Config, "token") }
func (p Paths) endpointFile() string { return filepath.Join(p.Config, "local.json") }
func (p Paths) lockFile() string     { return filepath.Join(p.Config, "local.lock") }

// StoreDir is the local satellite's JetStream store.
func (p Paths) StoreDir() string { return filepath.Join(p.Data, "store") }

// LogFile is where the local satellite logs.
func (p Paths) LogFile() string { return filepath.Join(p.Data, "satellite.log") }

// TokenFile is the file that holds the local satellite's token.
func (p Paths) TokenFile() string { return p.tokenFile() }

func (p Paths) mkdirs() error {
	for _, d := range []string{p.Config, p.Data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}
