package fly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default endpoints.
const (
	MachinesURL = "https://api.machines.dev"
	RegistryURL = "https://registry.fly.io"
)

// Client talks to Fly.io over HTTP. Its zero value is not usable: make one
// with NewClient.
type Client struct {
	machinesURL string // without /v1
	registryURL string
	token       string
	http        *http.Client
	// registries maps a registry host to the URL it is reached at (a
	// test's); others are https://HOST.
	registries map[string]string
}

// NewClient is a client for Fly.io's public endpoints holding an API token
// (FLY_API_TOKEN: `fly tokens create org`, or `fly auth token`).
func NewClient(token string) (*Client, error) {
	return NewClientAt(MachinesURL, RegistryURL, token)
}

// NewClientAt is NewClient against other endpoints (a test server, or the
// private http://_api.internal:4280 over WireGuard).
func NewClientAt(machinesURL, registryURL, token string) (*Client, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, ErrNoToken
	}
	return &Client{
		machinesURL: strings.TrimSuffix(machinesURL, "/"),
		registryURL: strings.TrimSuffix(registryURL, "/"),
		token:       token,
		http:        &http.Client{Timeout: 5 * time.Minute},
	}, nil
}

// WithRegistry makes c reach the image registry host (as in image
// references: ghcr.io) at url instead, e.g. a test server.
func (c *Client) WithRegistry(host, url string) *Client {
	if c.registries == nil {
		c.registries = map[string]string{}
	}
	c.registries[host] = strings.TrimSuffix(url, "/")
	return c
}

// authorization is the Authorization header of the Machines API: "Bearer
// TOKEN" as documented; a token that already names its scheme (`fly tokens
// create` prints "FlyV1 fm2_...") is sent as it is.
func (c *Client) authorization() string {
	if strings.HasPrefix(c.token, "FlyV1 ") || strings.HasPrefix(c.token, "Bearer ") {
		return c.token
	}
	return "Bearer " + c.token
}

// registryPassword is the token without a scheme, the password of the
// registry's basic auth (user "x"), as `fly auth docker` writes it.
func (c *Client) registryPassword() string {
	for _, scheme := range []string{"FlyV1 ", "Bearer "} {
		if s, ok := strings.CutPrefix(c.token, scheme); ok {
			return s
		}
	}
	return c.token
}

// do sends one Machines API request; in and out are JSON, either may be
// nil. Statuses over 299 become an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.machinesURL + "/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.authorization())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, err)
	}
	if resp.StatusCode > 299 {
		return apiError(method, path, resp.StatusCode, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: unexpected answer from Fly.io: %v", method, path, err)
		}
	}
	return nil
}

// apiError reads Fly's error body: {"error": "..."} (sometimes with
// "message").
func apiError(method, path string, status int, body []byte) *APIError {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error
		if e.Message != "" {
			msg = e.Message
		}
	} else {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
	}
	return &APIError{Method: method, Path: path, Status: status, Message: strings.TrimSuffix(msg, "."), kind: kindOf(status)}
}

// unwrapURLError drops the URL from a transport error: the message names
// the request already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func appPath(app string) string { return "/apps/" + url.PathEscape(app) }

// ListApps implements API.
func (c *Client) ListApps(ctx context.Context, org string) ([]App, error) {
	var out struct {
		Apps []App `json:"apps"`
	}
	err := c.do(ctx, http.MethodGet, "/apps", url.Values{"org_slug": {org}}, nil, &out)
	return out.Apps, err
}

// GetApp implements API.
func (c *Client) GetApp(ctx context.Context, app string) (App, error) {
	var out App
	err := c.do(ctx, http.MethodGet, appPath(app), nil, nil, &out)
	return out, err
}

// CreateApp implements API. A name that is taken (409 or 422) is
// ErrNameTaken.
func (c *Client) CreateApp(ctx context.Context, app, org string) error {
	in := map[string]string{"app_name": app, "org_slug": org}
	err := c.do(ctx, http.MethodPost, "/apps", nil, in, nil)
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusConflict || ae.Status == http.StatusUnprocessableEntity) {
		ae.kind = ErrNameTaken
	}
	return err
}

// DeleteApp implements API.
func (c *Client) DeleteApp(ctx context.Context, app string) error {
	return c.do(ctx, http.MethodDelete, appPath(app), nil, nil, nil)
}

// ListVolumes implements API.
func (c *Client) ListVolumes(ctx context.Context, app string) ([]Volume, error) {
	var out []Volume
	err := c.do(ctx, http.MethodGet, appPath(app)+"/volumes", nil, nil, &out)
	return out, err
}

// CreateVolume implements API.
func (c *Client) CreateVolume(ctx context.Context, app string, req CreateVolumeRequest) (Volume, error) {
	var out Volume
	err := c.do(ctx, http.MethodPost, appPath(app)+"/volumes", nil, req, &out)
	return out, err
}

// DeleteVolume implements API.
func (c *Client) DeleteVolume(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, appPath(app)+"/volumes/"+url.PathEscape(id), nil, nil, nil)
}

// ListIPs implements API.
func (c *Client) ListIPs(ctx context.Context, app string) ([]IPAssignment, error) {
	var out struct {
		IPs []IPAssignment `json:"ips"`
	}
	err := c.do(ctx, http.MethodGet, appPath(app)+"/ip_assignments", nil, nil, &out)
	return out.IPs, err
}

// AssignIP implements API; ipType is "v6" or "v4" (dedicated).
func (c *Client) AssignIP(ctx context.Context, app, ipType string) (IPAssignment, error) {
	var out IPAssignment
	err := c.do(ctx, http.MethodPost, appPath(app)+"/ip_assignments", nil, map[string]string{"type": ipType}, &out)
	return out, err
}

// ReleaseIP implements API.
func (c *Client) ReleaseIP(ctx context.Context, app, ip string) error {
	return c.do(ctx, http.MethodDelete, appPath(app)+"/ip_assignments/"+url.PathEscape(ip), nil, nil, nil)
}

// SetSecrets implements API.
func (c *Client) SetSecrets(ctx context.Context, app string, values map[string]string) (uint64, error) {
	var out struct {
		Version uint64 `json:"version"`
	}
	err := c.do(ctx, http.MethodPost, appPath(app)+"/secrets", nil, map[string]any{"values": values}, &out)
	return out.Version, err
}

// ListMachines implements API.
func (c *Client) ListMachines(ctx context.Context, app string) ([]Machine, error) {
	var out []Machine
	err := c.do(ctx, http.MethodGet, appPath(app)+"/machines", nil, nil, &out)
	return out, err
}

// CreateMachine implements API.
func (c *Client) CreateMachine(ctx context.Context, app string, req CreateMachineRequest) (Machine, error) {
	var out Machine
	err := c.do(ctx, http.MethodPost, appPath(app)+"/machines", nil, req, &out)
	return out, err
}

// StartMachine implements API.
func (c *Client) StartMachine(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodPost, appPath(app)+"/machines/"+url.PathEscape(id)+"/start", nil, nil, nil)
}

// WaitMachine implements API. Fly answers 408 when the state is not
// reached within timeout (at most 60 s a call).
func (c *Client) WaitMachine(ctx context.Context, app, id, instanceID, state string, timeout time.Duration) error {
	q := url.Values{"state": {state}, "timeout": {strconv.Itoa(int(timeout / time.Second))}}
	if instanceID != "" {
		q.Set("instance_id", instanceID)
	}
	return c.do(ctx, http.MethodGet, appPath(app)+"/machines/"+url.PathEscape(id)+"/wait", q, nil, nil)
}

// DestroyMachine implements API.
func (c *Client) DestroyMachine(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, appPath(app)+"/machines/"+url.PathEscape(id), url.Values{"force": {"true"}}, nil, nil)
}

// Exec implements API: the command runs without a shell.
func (c *Client) Exec(ctx context.Context, app, id string, command []string, timeout time.Duration) (ExecResult, error) {
	in := map[string]any{"command": command, "timeout": int(timeout / time.Second)}
	var out ExecResult
	err := c.do(ctx, http.MethodPost, appPath(app)+"/machines/"+url.PathEscape(id)+"/exec", nil, in, &out)
	return out, err
}
