package fly

import (
	"context"
	"time"
)

// API is the part of Fly.io the provider uses: the Machines API
// (https://api.machines.dev/v1) and the app's image registry
// (registry.fly.io). Client implements it over HTTP.
type API interface {
	// ListApps lists the apps of an organization: GET /apps?org_slug=.
	ListApps(ctx context.Context, org string) ([]App, error)
	// GetApp: GET /apps/{app}.
	GetApp(ctx context.Context, app string) (App, error)
	// CreateApp: POST /apps {app_name, org_slug}.
	CreateApp(ctx context.Context, app, org string) error
	// DeleteApp: DELETE /apps/{app}.
	DeleteApp(ctx context.Context, app string) error

	// PushImage pushes a one-layer image holding binary at /skypipe to
	// the app's repository in Fly's registry and returns its reference.
	PushImage(ctx context.Context, app, tag string, img Image) (string, error)
	// ResolveImage returns the manifest digest of a public image
	// (HOST/REPO:TAG, e.g. a release's on ghcr.io), asked anonymously:
	// HEAD /v2/REPO/manifests/TAG. ErrNotFound: no such image.
	ResolveImage(ctx context.Context, ref string) (string, error)

	// ListVolumes: GET /apps/{app}/volumes.
	ListVolumes(ctx context.Context, app string) ([]Volume, error)
	// CreateVolume: POST /apps/{app}/volumes.
	CreateVolume(ctx context.Context, app string, req CreateVolumeRequest) (Volume, error)
	// DeleteVolume: DELETE /apps/{app}/volumes/{id}.
	DeleteVolume(ctx context.Context, app, id string) error

	// ListIPs: GET /apps/{app}/ip_assignments.
	ListIPs(ctx context.Context, app string) ([]IPAssignment, error)
	// AssignIP: POST /apps/{app}/ip_assignments {type}.
	AssignIP(ctx context.Context, app, ipType string) (IPAssignment, error)
	// ReleaseIP: DELETE /apps/{app}/ip_assignments/{ip}.
	ReleaseIP(ctx context.Context, app, ip string) error

	// SetSecrets sets app secrets: POST /apps/{app}/secrets {values}. It
	// returns the secrets version a machine must see.
	SetSecrets(ctx context.Context, app string, values map[string]string) (uint64, error)

	// ListMachines: GET /apps/{app}/machines.
	ListMachines(ctx context.Context, app string) ([]Machine, error)
	// CreateMachine: POST /apps/{app}/machines.
	CreateMachine(ctx context.Context, app string, req CreateMachineRequest) (Machine, error)
	// StartMachine: POST /apps/{app}/machines/{id}/start.
	StartMachine(ctx context.Context, app, id string) error
	// WaitMachine: GET /apps/{app}/machines/{id}/wait?instance_id=&state=&timeout=.
	WaitMachine(ctx context.Context, app, id, instanceID, state string, timeout time.Duration) error
	// DestroyMachine: DELETE /apps/{app}/machines/{id}?force=true.
	DestroyMachine(ctx context.Context, app, id string) error
	// Exec runs a command in a machine: POST /apps/{app}/machines/{id}/exec.
	Exec(ctx context.Context, app, id string, command []string, timeout time.Duration) (ExecResult, error)
}

// App is a Fly app as the Machines API describes it.
type App struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	Status       string `json:"status,omitempty"`
	Organization struct {
		Name string `json:"name,omitempty"`
		Slug string `json:"slug,omitempty"`
	} `json:"organization"`
	MachineCount int `json:"machine_count,omitempty"`
	VolumeCount  int `json:"volume_count,omitempty"`
}

// Volume is a Fly volume.
type Volume struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	State             string `json:"state,omitempty"`
	SizeGB            int    `json:"size_gb"`
	Region            string `json:"region"`
	Encrypted         bool   `json:"encrypted"`
	AttachedMachineID string `json:"attached_machine_id,omitempty"`
}

// CreateVolumeRequest is the body of a volume's creation.
type CreateVolumeRequest struct {
	Name      string `json:"name"`
	Region    string `json:"region"`
	SizeGB    int    `json:"size_gb"`
	Encrypted bool   `json:"encrypted"`
}

// IPAssignment is an address assigned to an app.
type IPAssignment struct {
	IP          string `json:"ip"`
	Region      string `json:"region,omitempty"`
	ServiceName string `json:"service_name,omitempty"`
	Shared      bool   `json:"shared"`
}

// Machine is a Fly machine.
type Machine struct {
	ID         string        `json:"id"`
	Name       string        `json:"name,omitempty"`
	State      string        `json:"state,omitempty"`
	Region     string        `json:"region,omitempty"`
	InstanceID string        `json:"instance_id,omitempty"`
	Config     MachineConfig `json:"config"`
}

// CreateMachineRequest is the body of a machine's creation.
type CreateMachineRequest struct {
	Name   string        `json:"name,omitempty"`
	Region string        `json:"region,omitempty"`
	Config MachineConfig `json:"config"`
	// MinSecretsVersion makes the machine wait for the secrets just set.
	MinSecretsVersion *uint64 `json:"min_secrets_version,omitempty"`
}

// MachineConfig is the part of a machine's configuration skypipe sets.
type MachineConfig struct {
	Image    string            `json:"image"`
	Init     MachineInit       `json:"init"`
	Env      map[string]string `json:"env,omitempty"`
	Guest    *MachineGuest     `json:"guest,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Mounts   []MachineMount    `json:"mounts,omitempty"`
	Services []MachineService  `json:"services,omitempty"`
	Files    []MachineFile     `json:"files,omitempty"`
	Restart  *MachineRestart   `json:"restart,omitempty"`
}

// MachineInit overrides the image's command.
type MachineInit struct {
	Cmd []string `json:"cmd,omitempty"`
}

// MachineGuest is the machine's size.
type MachineGuest struct {
	CPUKind  string `json:"cpu_kind"`
	CPUs     int    `json:"cpus"`
	MemoryMB int    `json:"memory_mb"`
}

// MachineMount mounts a volume.
type MachineMount struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
}

// MachineService routes public traffic to the machine.
type MachineService struct {
	Protocol     string        `json:"protocol"`
	InternalPort int           `json:"internal_port"`
	Ports        []MachinePort `json:"ports"`
	Autostop     string        `json:"autostop,omitempty"`
	Autostart    *bool         `json:"autostart,omitempty"`
}

// MachinePort is a public port; no handlers means raw TCP passed through.
type MachinePort struct {
	Port     int      `json:"port"`
	Handlers []string `json:"handlers,omitempty"`
}

// MachineFile is a file Fly writes into the machine at boot, here from a
// secret holding its base64 content.
type MachineFile struct {
	GuestPath  string `json:"guest_path"`
	SecretName string `json:"secret_name,omitempty"`
	Mode       uint32 `json:"mode,omitempty"`
}

// MachineRestart is the restart policy.
type MachineRestart struct {
	Policy string `json:"policy"`
}

// ExecResult is what a command run with Exec returned.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}
