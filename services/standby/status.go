package standby

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// statusModule is the built-in module: it says who this manager is and what
// map it holds, over HTTP (GET /status/) and gRPC (ManagerService).
type statusModule struct{ s *Standby }

func (statusModule) Name() string  { return StatusModule }
func (statusModule) CanRun() error { return nil }

func (m statusModule) Register(r Registrar) {
	r.HandleHTTP("GET /{$}", http.HandlerFunc(m.serveHTTP))
	mgrv1.RegisterManagerServiceServer(r.GRPC(), &managerHandler{s: m.s})
}

// Run holds the module running until it is stopped: the module only serves.
func (statusModule) Run(ctx context.Context, _ Host) error {
	<-ctx.Done()
	return nil
}

// status builds the answer to GetStatus.
func (s *Standby) status() *mgrv1.GetStatusResponse {
	now := time.Now()
	m := s.role.Map()
	resp := &mgrv1.GetStatusResponse{
		Gid:         s.role.GID(),
		Name:        s.cfg.Name,
		Epoch:       m.GetEpoch(),
		ActiveEpoch: m.GetActiveEpoch(),
		Uptime:      durationpb.New(now.Sub(s.started)),
		Modules:     s.role.Running(),
		Map:         m,
	}
	if since := s.role.ActiveSince(); !since.IsZero() {
		resp.ActiveFor = durationpb.New(now.Sub(since))
	}
	return resp
}

// statusJSON is the body of GET /status/.
type statusJSON struct {
	GID              uint64          `json:"gid"`
	Name             string          `json:"name"`
	Epoch            uint64          `json:"epoch"`
	ActiveEpoch      uint64          `json:"active_epoch"`
	UptimeSeconds    float64         `json:"uptime_seconds"`
	ActiveForSeconds float64         `json:"active_for_seconds"`
	Modules          []string        `json:"modules"`
	Map              json.RawMessage `json:"map"`
}

func (m statusModule) serveHTTP(w http.ResponseWriter, r *http.Request) {
	st := m.s.status()
	mj, err := protojson.Marshal(st.GetMap())
	if err != nil {
		m.s.log.Error("failed to encode the map", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	body := statusJSON{
		GID:              st.GetGid(),
		Name:             st.GetName(),
		Epoch:            st.GetEpoch(),
		ActiveEpoch:      st.GetActiveEpoch(),
		UptimeSeconds:    st.GetUptime().AsDuration().Seconds(),
		ActiveForSeconds: st.GetActiveFor().AsDuration().Seconds(),
		Modules:          st.GetModules(),
		Map:              mj,
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(body); err != nil {
		m.s.log.Debug("failed to write the status", "error", err)
	}
}

// managerHandler serves mgr.v1.ManagerService.
type managerHandler struct {
	mgrv1.UnimplementedManagerServiceServer
	s *Standby
}

var _ mgrv1.ManagerServiceServer = (*managerHandler)(nil)

// GetStatus answers with this manager's status.
func (h *managerHandler) GetStatus(context.Context, *mgrv1.GetStatusRequest) (*mgrv1.GetStatusResponse, error) {
	return h.s.status(), nil
}
