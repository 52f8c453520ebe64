package boltstore

import (
	"context"
	"os"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
)

var _ persist.Sizer = (*Store)(nil)

// Space returns the room the file takes: Used is the bytes of the pages
// that hold data (every page up to the file's high-water mark, less the
// free ones), Free those free pages, File the file's apparent size and
// Disk its allocated blocks. bbolt grows its file in steps (up to 1 GiB)
// ahead of its pages, with a sparse tail, so after Compact File can be
// several times Used while Disk stays close to it.
func (s *Store) Space(ctx context.Context) (persist.Space, error) {
	var sp persist.Space
	err := s.view(ctx, "space", func(tx *bbolt.Tx) error {
		st := tx.DB().Stats()
		size := tx.Size()
		free := int64(st.FreePageN+st.PendingPageN) * int64(tx.DB().Info().PageSize)
		sp.Free = min(free, size)
		sp.Used = size - sp.Free
		fi, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		sp.File = fi.Size()
		sp.Disk = diskUsage(fi)
		return nil
	})
	return sp, err
}
