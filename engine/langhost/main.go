// Command pulumi-language-python is this project's Python language host for the Pulumi engine.
//
// Pulumi ships its own host as a separate Go module that the module proxy reachable from our build
// machines does not serve, so engine/ builds this one instead. It speaks the same LanguageRuntime gRPC
// protocol and runs programs through the same pieces as Pulumi's host: the toolchain package of the
// Pulumi Go SDK (virtualenv resolution, package listing, installs) and the SDK's
// `pulumi-language-python-exec` launcher, installed beside this binary. A `pulumi-language-python` found
// first on PATH (Pulumi's own) always wins; see engine/bootstrap.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at build time to the Pulumi version this host is paired with.
var version = "0.0.0-dev"

// bailExitCode is the launcher's way of saying it already showed the user an actionable error.
const bailExitCode = 32

// engineCheckInterval is how often the host checks that the engine that started it is still there.
const engineCheckInterval = 5 * time.Second

func main() {
	flag.String("tracing", "", "accepted for compatibility; tracing is not forwarded")
	flag.String("root", "", "accepted for compatibility; the root comes with each request")
	flag.Parse()

	host := &languageHost{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if flag.NArg() > 0 {
		host.engineAddress = flag.Arg(0)
		// Leave when the engine does, even if it exits without closing its plugins (a config error).
		if err := rpcutil.Healthcheck(ctx, host.engineAddress, engineCheckInterval, cancel); err != nil {
			fmt.Fprintf(os.Stderr, "pulumi-language-python: cannot watch the engine: %v\n", err)
			os.Exit(1)
		}
	}
	stop := make(chan bool)
	go func() { <-ctx.Done(); close(stop) }()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: cannot serve: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	running       map[*exec.Cmd]struct{}
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// resolveToolchain reads the runtime options of Pulumi.yaml (virtualenv, toolchain) the way Pulumi's
// host does, so a project behaves the same under either host.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Pip,
	}
	options := info.GetOptions().AsMap()
	if venv, ok := options["virtualenv"].(string); ok {
		opts.Virtualenv = venv
	}
	switch name, _ := options["toolchain"].(string); name {
	case "", "pip":
	case "uv":
		opts.Toolchain = toolchain.Uv
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	default:
		return nil, fmt.Errorf("unsupported Python toolchain %q in Pulumi.yaml (pip, uv or poetry)", name)
	}
	return toolchain.ResolveToolchain(opts)
}

// pluginManifest is the pulumi-plugin.json a provider SDK ships inside its Python package.
type pluginManifest struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// requiredPackages finds the provider plugins that installed Python packages declare.
func requiredPackages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	tc, err := resolveToolchain(info)
	if err != nil {
		return nil, err
	}
	venv, err := tc.VirtualEnvPath(ctx)
	if err != nil || venv == "" {
		return nil, err
	}
	manifests, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages", "*", "pulumi-plugin.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(manifests)
	var deps []*pulumirpc.PackageDependency
	for _, path := range manifests {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var m pluginManifest
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !m.Resource || m.Name == "" {
			continue
		}
		deps = append(deps, &pulumirpc.PackageDependency{
			Name: m.Name, Kind: "resource", Version: strings.TrimPrefix(m.Version, "v"), Server: m.Server,
		})
	}
	return deps, nil
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := requiredPackages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *languageHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := requiredPackages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(deps))
	for _, d := range deps {
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

// launcherPath finds the SDK's program launcher: beside this binary first, then on PATH.
func launcherPath() (string, error) {
	const name = "pulumi-language-python-exec"
	if self, err := os.Executable(); err == nil {
		candidate := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found beside the language host nor on PATH: %w", name, err)
	}
	return path, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	launcher, err := launcherPath()
	if err != nil {
		return nil, err
	}
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()
	args := []string{"-u", launcher,
		"--monitor", req.GetMonitorAddress(),
		"--engine", engine,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
	}
	if root := req.GetInfo().GetRootDirectory(); root != "" {
		args = append(args, "--root_directory", root)
	}
	if org := req.GetOrganization(); org != "" {
		args = append(args, "--organization", org)
	}
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	env, err := programEnv(cmd.Env, req)
	if err != nil {
		return nil, err
	}
	cmd.Env = env
	cmd.Dir = req.GetPwd()
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := h.track(cmd); err != nil {
		return nil, err
	}
	defer h.untrack(cmd)
	err = cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
}

// programEnv passes the stack configuration the way the SDK's launcher reads it: as JSON in
// PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS, never on the command line.
func programEnv(base []string, req *pulumirpc.RunRequest) ([]string, error) {
	if base == nil {
		base = os.Environ()
	}
	values := req.GetConfig()
	if values == nil {
		values = map[string]string{} // a stack without config: the SDK expects an object, never null
	}
	config, err := json.Marshal(values)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(base)+2)
	for _, kv := range base {
		if strings.HasPrefix(kv, "PULUMI_CONFIG=") || strings.HasPrefix(kv, "PULUMI_CONFIG_SECRET_KEYS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(keys)), nil
}

func (h *languageHost) track(cmd *exec.Cmd) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	if h.running == nil {
		h.running = map[*exec.Cmd]struct{}{}
	}
	h.running[cmd] = struct{}{}
	return nil
}

func (h *languageHost) untrack(cmd *exec.Cmd) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.running, cmd)
}

// Cancel interrupts running programs so that a cancelled update does not leave them behind.
func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.running {
		if cmd.Process != nil {
			_ = cmd.Process.Signal(os.Interrupt)
		}
	}
	return &emptypb.Empty{}, nil
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	stdout := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	stderr := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	dir := req.GetInfo().GetProgramDirectory()
	if err := tc.EnsureVenv(server.Context(), dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	return tc.InstallDependencies(server.Context(), dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

type streamWriter struct{ send func([]byte) error }

func (w *streamWriter) Write(p []byte) (int, error) {
	buf := make([]byte, len(p))
	copy(buf, p)
	if err := w.send(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"host": "ovh-ha-cluster engine/langhost"},
	}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(pkgs))
	for _, p := range pkgs {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
